// The real RunPod activities with the real RunPodClient against the real emulator (sshd pods, no mocks): every
// classification of the reserve step, readiness verdicts and confirmed termination. After each scenario the
// emulator's billing meter must show no leaked pod and no reservation billed twice.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import { SshPodConnector } from '../../src/activities/ssh/index.js';
import { createRequest, createRunPodActivities } from '../../src/activities/runpod/activities.js';
import type { RunPodActivityDeps } from '../../src/activities/runpod/activities.js';
import { RunPodClient, type CandidateAttempt, type ReservePodInput } from '../../src/activities/runpod/index.js';
import { RunPodTargetSchema, type RunPodTarget } from '../../src/study/schema.js';
import { startRunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import type { RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';

const API_KEY = 'activities-key';
const OTHER_KEY = 'other-key';
const H100 = 'NVIDIA H100 80GB HBM3';
const L40S = 'NVIDIA L40S';
const A6000 = 'NVIDIA RTX A6000';

const dir = mkdtempSync(join(tmpdir(), 'runpod-activities-'));
let emu: RunPodEmulator;
let connector: SshPodConnector;
let publicKey: string;
let seq = 0;
/** Pod names used by the current test: the leak check looks at exactly these. */
let names: string[] = [];

const target: RunPodTarget = RunPodTargetSchema.parse({
  kind: 'runpod',
  image: 'runpod/pytorch:2.8.0',
  containerDiskGb: 20,
  volumeGb: 20,
  candidates: [
    { gpuTypeId: H100, dataCenterIds: ['US-KS-2'] },
    { gpuTypeId: L40S, dataCenterIds: ['EU-RO-1'] },
    { gpuTypeId: A6000, dataCenterIds: ['US-TX-3'] },
  ],
});

// Function-valued properties (not methods), so they can be handed to the mock environment unbound.
type RunPodActivities = {
  [K in keyof ReturnType<typeof createRunPodActivities>]: ReturnType<typeof createRunPodActivities>[K];
};

function activities(
  opts: { apiKey?: string; timeoutMs?: number } & Partial<RunPodActivityDeps> = {},
): RunPodActivities {
  const runpod = new RunPodClient({
    apiKey: opts.apiKey ?? API_KEY,
    baseUrl: emu.url,
    timeoutMs: opts.timeoutMs ?? 5_000,
  });
  return withFailureConversion(
    createRunPodActivities({
      runpod,
      connector,
      publicKey,
      pollIntervalMs: 100,
      lostCreateLookupMs: 300,
      maxRateLimitWaitMs: 5_000,
      ...opts,
    }),
  );
}

function newName(): string {
  const name = `gpustudy--acts--p--m--t${++seq}${Date.now().toString(36)}-r0`;
  names.push(name);
  return name;
}

/** Runs an activity in a mock activity context (attempt 1 unless `info` says otherwise); collects its heartbeats. */
async function run<I, O>(
  fn: (input: I) => Promise<O>,
  input: I,
  beats: unknown[] = [],
  info: { attempt?: number; heartbeatDetails?: unknown } = {},
): Promise<O> {
  const env = new MockActivityEnvironment({ attempt: 1, ...info }, { logger: new DefaultLogger('ERROR') });
  env.on('heartbeat', (d: unknown) => beats.push(d));
  return env.run(fn, input);
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected the activity to fail');
}

const outcomes = (attempts: CandidateAttempt[]) => attempts.map((a) => `${a.index}:${a.outcome}`);
const attemptsOf = (f: ApplicationFailure) => (f.details?.[0] ?? []) as CandidateAttempt[];
const createCalls = () => emu.calls().filter((c) => c.method === 'POST' && c.path === '/pods').length;

/** No pod of this test is alive, none is still billing, and no reservation name was billed twice. */
function expectNoLeakNoDuplicate(): void {
  const ours = (n: string) => names.includes(n);
  expect(emu.pods().filter((p) => ours(p.name))).toEqual([]);
  const billed = emu.billing().pods.filter((p) => ours(p.name));
  expect(billed.filter((p) => p.accruing)).toEqual([]);
  const perName = new Map<string, number>();
  for (const p of billed) perName.set(p.name, (perName.get(p.name) ?? 0) + 1);
  expect([...perName.values()].every((n) => n <= 1)).toBe(true);
}

async function terminateAll(): Promise<void> {
  const acts = activities();
  for (const p of emu.pods().filter((x) => names.includes(x.name))) await run(acts.terminatePod, { podId: p.id });
}

beforeAll(async () => {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id_ed25519')]);
  publicKey = readFileSync(join(dir, 'id_ed25519.pub'), 'utf8').trim();
  connector = new SshPodConnector({ privateKeyPath: join(dir, 'id_ed25519'), connectTimeoutMs: 5_000 });
  emu = await startRunPodEmulator({
    apiKeys: [API_KEY, OTHER_KEY],
    timeline: { provisioningDelayMs: 50, startingDelayMs: 50, imagePullDelayMs: 100, portDelayMs: 100 },
    rateLimits: { minute: 100_000, hour: 1_000_000, day: 10_000_000 },
  });
});

afterAll(async () => {
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  names = [];
  emu.clearFaults();
  emu.setCapacity({
    replace: true,
    cells: [
      { gpuTypeId: H100, dataCenterId: 'US-KS-2', freeGpus: 8 },
      { gpuTypeId: L40S, dataCenterId: 'EU-RO-1', freeGpus: 8 },
      { gpuTypeId: A6000, dataCenterId: 'US-TX-3', freeGpus: 8 },
    ],
  });
});

afterEach(async () => {
  emu.clearFaults();
  await terminateAll();
  expectNoLeakNoDuplicate();
});

describe('reservePod classifications', () => {
  it('no capacity on the first candidate: the next one is created, and the UI sees both', async () => {
    emu.setCapacity({ cells: [{ gpuTypeId: H100, dataCenterId: 'US-KS-2', freeGpus: 0 }] });
    const beats: unknown[] = [];
    const out = await run(activities().reservePod, { podName: newName(), target }, beats);
    expect(outcomes(out.attempts)).toEqual(['0:no-capacity', '1:created']);
    expect(out.pod.candidateIndex).toBe(1);
    expect(out.pod.candidate.gpuTypeId).toBe(L40S);
    expect(out.pod.dataCenterId).toBe('EU-RO-1');
    expect(out.attempts[0]?.detail).toMatch(/no longer any instances available/);
    const last = beats.at(-1) as { tried: string };
    expect(last.tried).toMatch(
      /#0 NVIDIA H100 80GB HBM3 \[US-KS-2\]: no-capacity.*#1 NVIDIA L40S \[EU-RO-1\]: created/,
    );
    await run(activities().terminatePod, { podId: out.pod.podId });
  });

  it('every candidate out of capacity: a retryable failure that lists each candidate and why', async () => {
    emu.setCapacity({ replace: true, cells: [] });
    const f = await failure(run(activities().reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodNoCapacityError');
    expect(f.nonRetryable).toBe(false);
    expect(outcomes(attemptsOf(f))).toEqual(['0:no-capacity', '1:no-capacity', '2:no-capacity']);
    expect(f.message).toMatch(/#0 .*#1 .*#2 .*retrying later/);
    expect(createCalls()).toBeGreaterThan(0);
  });

  it('429: waits Retry-After and retries the same candidate', async () => {
    emu.injectFault({ type: 'storm', status: 429, requests: 2, retryAfterS: 1, method: 'POST', pathPrefix: '/pods' });
    const started = Date.now();
    const out = await run(activities().reservePod, { podName: newName(), target });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(outcomes(out.attempts)).toEqual(['0:rate-limited', '0:rate-limited', '0:created']);
    expect(out.pod.candidateIndex).toBe(0);
  });

  it('429 with a Retry-After too long to wait in place: a retryable failure with that delay', async () => {
    emu.injectFault({ type: 'storm', status: 429, requests: 1, retryAfterS: 30, method: 'POST', pathPrefix: '/pods' });
    const f = await failure(run(activities().reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodRateLimitedError');
    expect(f.nonRetryable).toBe(false);
    expect(f.nextRetryDelay).toBe(30_000);
    expect(outcomes(attemptsOf(f))).toEqual(['0:rate-limited']);
  });

  it('create answered 5xx but the pod exists: it is adopted by name, never created twice', async () => {
    emu.injectFault({ type: 'create-5xx', status: 502, count: 1 });
    const before = createCalls();
    const name = newName();
    const out = await run(activities().reservePod, { podName: name, target });
    expect(outcomes(out.attempts)).toEqual(['0:adopted']);
    expect(out.attempts[0]?.detail).toMatch(/created despite.*502/);
    expect(createCalls() - before).toBe(1);
    expect(emu.billing().pods.filter((p) => p.name === name)).toHaveLength(1);
  });

  it('create answered 5xx and nothing was created: the next candidate', async () => {
    emu.injectFault({ type: 'storm', status: 503, requests: 1, method: 'POST', pathPrefix: '/pods' });
    const out = await run(activities().reservePod, { podName: newName(), target });
    expect(outcomes(out.attempts)).toEqual(['0:server-error', '1:created']);
  });

  it('create timed out but the pod shows up: adopted while looking by name', async () => {
    // The emulator holds the request 1.5 s and then creates the pod; the client gave up after 0.5 s.
    emu.injectFault({ type: 'latency', delayMs: 1_500, requests: 1, method: 'POST', pathPrefix: '/pods' });
    const name = newName();
    const out = await run(activities({ timeoutMs: 500, lostCreateLookupMs: 3_000 }).reservePod, {
      podName: name,
      target,
    });
    expect(outcomes(out.attempts)).toEqual(['0:adopted']);
    expect(out.attempts[0]?.detail).toMatch(/no response within 500 ms/);
    expect(emu.billing().pods.filter((p) => p.name === name)).toHaveLength(1);
  });

  it('create timed out and the pod shows up only after the look window: the by-name sweep removes it', async () => {
    emu.injectFault({ type: 'latency', delayMs: 1_500, requests: 1, method: 'POST', pathPrefix: '/pods' });
    const name = newName();
    const acts = activities({ timeoutMs: 500, lostCreateLookupMs: 100 });
    const out = await run(acts.reservePod, { podName: name, target });
    expect(outcomes(out.attempts)).toEqual(['0:server-error', '1:created']);
    // The late pod appears after the reserve returned: the session's by-name sweep removes it.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(emu.pods().filter((p) => p.name === name)).toHaveLength(2);
    await run(acts.terminatePod, { podId: out.pod.podId });
    const swept = await run(acts.terminatePodsByName, { podNames: [name] });
    expect(swept.terminated).toHaveLength(1);
    expect(emu.pods().filter((p) => p.name === name)).toEqual([]);
    // Two pods were billed under this name, briefly; both are terminated and nothing accrues.
    expect(emu.billing().pods.filter((p) => p.name === name && p.accruing)).toEqual([]);
    names = names.filter((n) => n !== name);
  });

  it('a retry within a round adopts the pod the round already has', async () => {
    const input: ReservePodInput = { podName: newName(), target };
    const first = await run(activities().reservePod, input);
    const second = await run(activities().reservePod, input);
    expect(second.pod.podId).toBe(first.pod.podId);
    expect(outcomes(second.attempts)).toEqual(['0:adopted']);
  });

  it('an adopted pod maps back to its candidate even when two candidates share a GPU type', async () => {
    const twoH100: RunPodTarget = {
      ...target,
      candidates: [{ gpuTypeId: H100, gpuCount: 1, dataCenterIds: ['EU-RO-1'], cloud: 'SECURE' }, ...target.candidates],
    };
    const input: ReservePodInput = { podName: newName(), target: twoH100 };
    const first = await run(activities().reservePod, input);
    expect(outcomes(first.attempts)).toEqual(['0:no-capacity', '1:created']);
    const again = await run(activities().reservePod, input);
    expect(again.pod.candidateIndex).toBe(1);
  });

  it('excluded candidates are skipped', async () => {
    const out = await run(activities().reservePod, { podName: newName(), target, excludeCandidates: [0], round: 1 });
    expect(outcomes(out.attempts)).toEqual(['1:created']);
    expect(out.attempts[0]?.round).toBe(1);
  });

  it('401: non-retryable, and the message says which setting to check', async () => {
    const f = await failure(run(activities({ apiKey: 'not-a-key' }).reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodUnauthorizedError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/RUNPOD_API_KEY/);
  });

  it('403 on the key (access denied): non-retryable, before any create', async () => {
    emu.injectFault({ type: 'forbidden-key', apiKey: OTHER_KEY });
    const before = createCalls();
    const f = await failure(run(activities({ apiKey: OTHER_KEY }).reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodForbiddenError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/lacks a permission/);
    expect(createCalls()).toBe(before);
  });

  it('403 on one GPU pool: that candidate is skipped', async () => {
    emu.injectFault({ type: 'restricted-pool', gpuTypeId: H100 });
    const out = await run(activities().reservePod, { podName: newName(), target });
    expect(outcomes(out.attempts)).toEqual(['0:forbidden', '1:created']);
    expect(out.attempts[0]?.detail).toMatch(/pool/);
  });

  it('403 on every candidate pool: non-retryable', async () => {
    for (const gpuTypeId of [H100, L40S, A6000]) emu.injectFault({ type: 'restricted-pool', gpuTypeId });
    const f = await failure(run(activities().reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodForbiddenError');
    expect(f.nonRetryable).toBe(true);
    expect(outcomes(attemptsOf(f))).toEqual(['0:forbidden', '1:forbidden', '2:forbidden']);
  });

  it('402: non-retryable "add funds"', async () => {
    emu.injectFault({ type: 'insufficient-balance' });
    const f = await failure(run(activities().reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodInsufficientBalanceError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/add funds/);
    expect(outcomes(attemptsOf(f))).toEqual(['0:insufficient-balance']);
  });

  it('422: non-retryable, naming the field', async () => {
    const bad: RunPodTarget = { ...target, volumeGb: 5 };
    const f = await failure(run(activities().reservePod, { podName: newName(), target: bad }));
    expect(f.type).toBe('RunPodValidationError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/\$\.mounts\.persistent\.size/);
    expect(outcomes(attemptsOf(f))).toEqual(['0:invalid-request']);
  });
});

describe('reservePod: lost create answers and duplicates', () => {
  const podsNamed = (name: string) => emu.pods().filter((p) => p.name === name);

  it('create answered 5xx and the list shows the pod only 3.5 s later: adopted after looking, never created twice', async () => {
    const name = newName();
    emu.injectFault({ type: 'create-5xx', status: 502, count: 1 });
    emu.injectFault({ type: 'pod', effect: 'list-lag', namePrefix: name, afterMs: 3_500 });
    const before = createCalls();
    const beats: unknown[] = [];
    const out = await run(activities({ lostCreateLookupMs: 10_000 }).reservePod, { podName: name, target }, beats);
    expect(outcomes(out.attempts)).toEqual(['0:adopted']);
    expect(out.attempts[0]?.detail).toMatch(/created despite.*502/);
    expect(createCalls() - before).toBe(1);
    expect(emu.billing().pods.filter((p) => p.name === name)).toHaveLength(1);
    // It heartbeated while it looked, and said when the answer was lost (a retry resumes the look from there).
    const looking = beats.filter((b) => typeof (b as { looking?: unknown }).looking === 'string');
    expect(looking.length).toBeGreaterThan(3);
    expect((looking.at(-1) as { lostCreateAt?: unknown }).lostCreateAt).toEqual(expect.any(String));
  });

  it('a retry resumes the look of the attempt that lost the create answer', async () => {
    const name = newName();
    // The attempt before lost the answer of this create; its pod shows in the list only 1.5 s later.
    emu.injectFault({ type: 'pod', effect: 'list-lag', namePrefix: name, afterMs: 1_500 });
    const client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
    const lost = await client.createPod(createRequest(name, target, target.candidates[0]!, publicKey, 0));
    const before = createCalls();
    const out = await run(activities({ lostCreateLookupMs: 10_000 }).reservePod, { podName: name, target }, [], {
      attempt: 2,
      heartbeatDetails: { podName: name, lostCreateAt: new Date().toISOString() },
    });
    expect(outcomes(out.attempts)).toEqual(['0:adopted']);
    expect(out.pod.podId).toBe(lost.id);
    expect(createCalls()).toBe(before);
  });

  it('a lost pod that surfaces after the look, while the new pod is not listed yet: the lost one is terminated', async () => {
    const name = newName();
    const client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
    // The attempt before lost this create's answer; its pod is listed only 500 ms from now, after this attempt's look.
    emu.injectFault({ type: 'pod', effect: 'list-lag', namePrefix: name, afterMs: 500 });
    const lost = await client.createPod(createRequest(name, target, target.candidates[0]!, publicKey, 0));
    // The create this attempt makes takes 1 s, and its pod is listed only 10 s later.
    emu.injectFault({ type: 'pod', effect: 'list-lag', namePrefix: name, afterMs: 10_000 });
    emu.injectFault({ type: 'latency', delayMs: 1_000, requests: 1, method: 'POST', pathPrefix: '/pods' });
    const out = await run(activities({ lostCreateLookupMs: 300 }).reservePod, { podName: name, target }, [], {
      attempt: 2,
      heartbeatDetails: { podName: name, lostCreateAt: new Date().toISOString() },
    });
    expect(outcomes(out.attempts)).toEqual(['0:created']);
    expect(out.pod.podId).not.toBe(lost.id);
    expect(out.attempts[0]?.detail).toContain(`terminated duplicate pod(s) under the same name: ${lost.id}`);
    expect(podsNamed(name).map((p) => p.id)).toEqual([out.pod.podId]);
    names = names.filter((n) => n !== name); // two pods were billed under this name, by construction
    await run(activities().terminatePod, { podId: out.pod.podId });
  });

  it('two live pods under the name: the oldest is adopted and the other terminated at once', async () => {
    const name = newName();
    const client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
    const first = await client.createPod(createRequest(name, target, target.candidates[1]!, publicKey, 1));
    const second = await client.createPod(createRequest(name, target, target.candidates[0]!, publicKey, 0));
    const out = await run(activities().reservePod, { podName: name, target });
    expect(out.pod.podId).toBe(first.id);
    expect(outcomes(out.attempts)).toEqual(['1:adopted']);
    expect(out.attempts[0]?.detail).toContain(`terminated duplicate pod(s) under the same name: ${second.id}`);
    // Gone when the reserve returns, not at session end.
    expect(podsNamed(name).map((p) => p.id)).toEqual([first.id]);
    expect(emu.billing().pods.find((p) => p.podId === second.id)?.accruing).toBe(false);
    names = names.filter((n) => n !== name); // two pods under one name were created on purpose here
    await run(activities().terminatePod, { podId: first.id });
  });
});

describe('reservePod: rate limits', () => {
  it('429 whose RateLimit header shows another exhausted window: waits for that reset, not only Retry-After', async () => {
    emu.injectFault({
      type: 'storm',
      status: 429,
      requests: 1,
      retryAfterS: 1,
      exhausted: [{ window: 'hour', resetS: 3 }],
      method: 'POST',
      pathPrefix: '/pods',
    });
    const started = Date.now();
    const out = await run(activities().reservePod, { podName: newName(), target });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
    expect(outcomes(out.attempts)).toEqual(['0:rate-limited', '0:created']);
    expect(out.attempts[0]?.detail).toMatch(/waiting 3000 ms/);
  });

  it('the in-place wait is a time budget, not a count: six 1 s waits fit in 8 s', async () => {
    emu.injectFault({ type: 'storm', status: 429, requests: 6, retryAfterS: 1, method: 'POST', pathPrefix: '/pods' });
    const out = await run(activities({ maxRateLimitWaitMs: 8_000 }).reservePod, { podName: newName(), target });
    expect(outcomes(out.attempts)).toEqual([...Array<string>(6).fill('0:rate-limited'), '0:created']);
  });

  it('a budget spent: retryable, with the wait still needed as the next retry delay', async () => {
    emu.injectFault({ type: 'storm', status: 429, requests: 3, retryAfterS: 2, method: 'POST', pathPrefix: '/pods' });
    const f = await failure(run(activities({ maxRateLimitWaitMs: 3_000 }).reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodRateLimitedError');
    expect(f.nonRetryable).toBe(false);
    expect(f.nextRetryDelay).toBe(2_000);
    expect(outcomes(attemptsOf(f))).toEqual(['0:rate-limited', '0:rate-limited']);
  });

  it('terminatePod rides out a 429 on DELETE', async () => {
    const out = await run(activities().reservePod, { podName: newName(), target });
    emu.injectFault({ type: 'storm', status: 429, requests: 1, retryAfterS: 1, method: 'DELETE' });
    const t = await run(activities().terminatePod, { podId: out.pod.podId });
    expect(t.alreadyGone).toBe(false);
    const deletes = emu.calls().filter((c) => c.method === 'DELETE' && c.path === `/pods/${out.pod.podId}`);
    expect(deletes.map((c) => c.status)).toEqual([429, 204]);
  });
});

describe('reservePod: a 400 that is neither capacity nor a field error', () => {
  it('on one candidate: the next candidate is tried', async () => {
    emu.injectFault({ type: 'create-400', gpuTypeId: H100, detail: 'GPU type is not available for this account' });
    const out = await run(activities().reservePod, { podName: newName(), target });
    expect(outcomes(out.attempts)).toEqual(['0:rejected', '1:created']);
    expect(out.attempts[0]?.detail).toBe('400 GPU type is not available for this account');
  });

  it('on every candidate: non-retryable, listing every candidate and its answer', async () => {
    emu.injectFault({ type: 'create-400', gpuTypeId: H100, detail: 'rule one' });
    emu.injectFault({ type: 'create-400', gpuTypeId: L40S, detail: 'rule two' });
    emu.injectFault({ type: 'create-400', gpuTypeId: A6000, detail: 'rule three' });
    const f = await failure(run(activities().reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodValidationError');
    expect(f.nonRetryable).toBe(true);
    expect(outcomes(attemptsOf(f))).toEqual(['0:rejected', '1:rejected', '2:rejected']);
    expect(f.message).toMatch(/#0 NVIDIA H100 80GB HBM3 \[US-KS-2\]: rejected \(400 rule one\)/);
    expect(f.message).toMatch(/#1 NVIDIA L40S \[EU-RO-1\]: rejected \(400 rule two\)/);
    expect(f.message).toMatch(/#2 NVIDIA RTX A6000 \[US-TX-3\]: rejected \(400 rule three\)/);
  });

  it('on some candidates and no capacity on the others: retryable, capacity may come back', async () => {
    emu.injectFault({ type: 'create-400', gpuTypeId: H100, detail: 'rule one' });
    emu.setCapacity({ cells: [{ gpuTypeId: L40S, dataCenterId: 'EU-RO-1', freeGpus: 0 }] });
    emu.setCapacity({ cells: [{ gpuTypeId: A6000, dataCenterId: 'US-TX-3', freeGpus: 0 }] });
    const f = await failure(run(activities().reservePod, { podName: newName(), target }));
    expect(f.type).toBe('RunPodNoCapacityError');
    expect(f.nonRetryable).toBe(false);
    expect(outcomes(attemptsOf(f))).toEqual(['0:rejected', '1:no-capacity', '2:no-capacity']);
  });
});

describe('waitForPodReady', () => {
  async function createPod(name: string, index = 1): Promise<string> {
    const client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
    const c = target.candidates[index]!;
    return (await client.createPod(createRequest(name, target, c, publicKey, index))).id;
  }
  const ready = (podId: string, timeoutMs = 8_000) =>
    run(activities().waitForPodReady, { podId, timeoutMs, defaultWorkspaceDir: '/workspace' });

  it('returns the SSH endpoint and the workspace once a command ran there', async () => {
    const podId = await createPod(newName());
    const ep = await ready(podId);
    expect(ep.ssh.host).toBe('127.0.0.1');
    expect(ep.workspaceDir).toBe(emu.pods().find((p) => p.id === podId)?.workspaceDir);
  });

  it('rides out RunPod 5xx while polling', async () => {
    const podId = await createPod(newName());
    emu.injectFault({ type: 'storm', status: 503, requests: 3, method: 'GET', pathPrefix: `/pods/${podId}` });
    const ep = await ready(podId);
    expect(ep.ssh.port).toBeGreaterThan(0);
  });

  it('a pod that goes to ERROR: non-retryable PodNotReadyError naming the status', async () => {
    const name = newName();
    emu.injectFault({ type: 'pod', effect: 'error', namePrefix: name, afterMs: 0 });
    const f = await failure(ready(await createPod(name)));
    expect(f.type).toBe('PodNotReadyError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/went to ERROR/);
  });

  it('a pod that vanishes: non-retryable PodGoneError', async () => {
    const name = newName();
    emu.injectFault({ type: 'pod', effect: 'vanish', namePrefix: name, afterMs: 100 });
    const f = await failure(ready(await createPod(name)));
    expect(f.type).toBe('PodGoneError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/vanished/);
  });

  it('a pod that never gets a port: PodNotReadyError at the deadline', async () => {
    const name = newName();
    emu.injectFault({ type: 'pod', effect: 'no-ports', namePrefix: name });
    const f = await failure(ready(await createPod(name), 1_500));
    expect(f.type).toBe('PodNotReadyError');
    expect(f.message).toMatch(/never got a public SSH port/);
  });

  it('a pod whose sshd refuses: PodNotReadyError at the deadline, saying so', async () => {
    const name = newName();
    emu.injectFault({ type: 'pod', effect: 'sshd-refuses', namePrefix: name });
    const f = await failure(ready(await createPod(name), 2_000));
    expect(f.type).toBe('PodNotReadyError');
    expect(f.message).toMatch(/sshd refuses/);
  });
});

describe('terminatePod and terminatePodsByName', () => {
  it('confirms the pod is gone; a second terminate (404 on DELETE) counts as done', async () => {
    const out = await run(activities().reservePod, { podName: newName(), target });
    const first = await run(activities().terminatePod, { podId: out.pod.podId });
    expect(first.alreadyGone).toBe(false);
    const client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
    expect(await client.getPod(out.pod.podId)).toBeNull();
    const second = await run(activities().terminatePod, { podId: out.pod.podId });
    expect(second.alreadyGone).toBe(true);
    const deletes = emu.calls().filter((c) => c.method === 'DELETE' && c.path === `/pods/${out.pod.podId}`);
    expect(deletes.map((c) => c.status)).toEqual([204, 404]);
  });

  it('a DELETE answered 5xx fails retryably; the retry finishes the job', async () => {
    const out = await run(activities().reservePod, { podName: newName(), target });
    emu.injectFault({ type: 'storm', status: 500, requests: 1, method: 'DELETE' });
    const f = await failure(run(activities().terminatePod, { podId: out.pod.podId }));
    expect(f.nonRetryable).toBe(false);
    await run(activities().terminatePod, { podId: out.pod.podId });
    expect(emu.pods().find((p) => p.id === out.pod.podId)).toBeUndefined();
  });

  it('terminates every live pod carrying the names, and nothing else', async () => {
    const client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
    const [a, b] = [newName(), newName()];
    const c = target.candidates[1]!;
    await client.createPod(createRequest(a, target, c, publicKey));
    await client.createPod(createRequest(a, target, c, publicKey));
    const keep = await client.createPod(createRequest(b, target, c, publicKey));
    const out = await run(activities().terminatePodsByName, { podNames: [a] });
    expect(out.terminated.map((t) => t.name)).toEqual([a, a]);
    expect(emu.pods().map((p) => p.id)).toContain(keep.id);
    names = names.filter((n) => n !== a); // two pods under one name were created on purpose here
  });
});
