// The real RunPodClient against the real RunPod emulator (no mocks): CRUD, pagination, every error class.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RunPodApiError,
  RunPodClient,
  RunPodForbiddenError,
  RunPodInsufficientBalanceError,
  RunPodNetworkError,
  RunPodNoCapacityError,
  RunPodNotFoundError,
  RunPodProtocolError,
  RunPodRateLimitedError,
  RunPodServerError,
  RunPodTimeoutError,
  RunPodUnauthorizedError,
  RunPodValidationError,
  podSshEndpoint,
  toPhase,
} from '../../src/activities/runpod/index.js';
import type { CreatePodRequest, Pod } from '../../src/activities/runpod/index.js';
import { startRunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import type { RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';

const API_KEY = 'test-key';
const FAST = { provisioningDelayMs: 50, startingDelayMs: 50, imagePullDelayMs: 100, portDelayMs: 150 };

let emu: RunPodEmulator;
let client: RunPodClient;
let seq = 0;

function spec(overrides: Partial<CreatePodRequest> = {}): CreatePodRequest {
  return {
    name: `client-test-${++seq}-${Date.now()}`,
    image: 'runpod/pytorch:2.8.0',
    gpu: { id: 'NVIDIA L40S', count: 1 },
    ports: ['22/tcp'],
    ...overrides,
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function waitFor<T>(probe: () => Promise<T | null | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  emu = await startRunPodEmulator({
    apiKeys: [API_KEY, 'other-key', 'limited-key'],
    timeline: FAST,
    rateLimits: { minute: 100_000, hour: 1_000_000, day: 10_000_000 },
  });
  client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url, timeoutMs: 5_000 });
});

afterAll(async () => {
  await emu?.close();
});

describe('RunPodClient against the emulator', () => {
  it('creates, reads and deletes a pod; a 404 is null / false', async () => {
    const created = await client.createPod(spec());
    expect(created.id).toMatch(/^[a-z0-9]{14}$/);
    expect(toPhase(created.status)).toBe('starting');
    expect(created.gpu).toMatchObject({ id: 'NVIDIA L40S', count: 1 });
    expect(created.cost).toBe(0.86);

    const read = await client.getPod(created.id);
    expect(read?.name).toBe(created.name);

    expect(await client.deletePod(created.id)).toBe(true);
    expect(await client.getPod(created.id)).toBeNull();
    expect(await client.deletePod(created.id)).toBe(false);
    expect(await client.getPod('doesnotexist00')).toBeNull();
  });

  it('follows cursor pagination to the last page and finds pods by name', async () => {
    const prefix = `page-${Date.now()}-`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.createPod(spec({ name: `${prefix}${i}`, ports: [] }))).id);
    const before = emu.calls().length;

    const all = await client.listPods({ pageSize: 2 });
    const listCalls = emu
      .calls()
      .slice(before)
      .filter((c) => c.method === 'GET' && c.path === '/pods');
    expect(listCalls.length).toBeGreaterThanOrEqual(3);
    const ours = all.filter((p) => p.name.startsWith(prefix)).map((p) => p.id);
    expect(ours).toEqual([...ids].reverse()); // newest first
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);

    const found = await client.findPodsByNamePrefix(prefix, { pageSize: 3 });
    expect(found.map((p) => p.id).sort()).toEqual([...ids].sort());
    expect((await client.findPodByName(`${prefix}3`))?.id).toBe(ids[3]);
    expect(await client.findPodByName(`${prefix}nope`)).toBeNull();

    for (const id of ids) await client.deletePod(id);
  });

  it('treats a list without pagination (spec 2.9) as the last page', async () => {
    const old = await startRunPodEmulator({ schemaMode: 'strict-2.9', timeline: FAST });
    try {
      const c = new RunPodClient({ apiKey: 'any', baseUrl: old.url });
      const pod = await c.createPod(spec({ ports: [] }));
      const pods = await c.listPods({ pageSize: 1 });
      expect(pods.map((p) => p.id)).toEqual([pod.id]);
      expect(pod.gpu?.vcpuCount).toBeUndefined();

      const err = await rejection(c.createPod(spec({ gpu: { id: 'NVIDIA L40S', minRamPerGpu: 48 } })));
      expect(err).toBeInstanceOf(RunPodValidationError);
      expect((err as RunPodValidationError).fields).toContain('$.gpu.minRamPerGpu');
    } finally {
      await old.close();
    }
  });

  it('classifies no capacity, including a GPU not offered in the listed data centers', async () => {
    const err = await rejection(
      client.createPod(spec({ gpu: { id: 'NVIDIA H100 80GB HBM3', count: 1 }, dataCenterIds: ['EU-SE-1'] })),
    );
    expect(err).toBeInstanceOf(RunPodNoCapacityError);
    expect(err).toBeInstanceOf(RunPodApiError);
    const e = err as RunPodNoCapacityError;
    expect(e.name).toBe('RunPodNoCapacityError');
    expect(e.kind).toBe('no-capacity');
    expect(e.status).toBe(400);
    expect(e.method).toBe('POST');
    expect(e.path).toBe('/pods');
    expect(e.detail).toMatch(/no longer any instances available/);
    expect(e.requestId).toBeTruthy();

    emu.setCapacity({ cells: [{ gpuTypeId: 'NVIDIA RTX A6000', dataCenterId: 'US-TX-3', freeGpus: 0 }] });
    await expect(client.createPod(spec({ gpu: { id: 'NVIDIA RTX A6000' } }))).rejects.toBeInstanceOf(
      RunPodNoCapacityError,
    );
    emu.setCapacity({ cells: [{ gpuTypeId: 'NVIDIA RTX A6000', dataCenterId: 'US-TX-3', freeGpus: 4 }] });
  });

  it('classifies 401 and 403', async () => {
    const bad = new RunPodClient({ apiKey: 'wrong-key', baseUrl: emu.url });
    const err401 = await rejection(bad.listPods());
    expect(err401).toBeInstanceOf(RunPodUnauthorizedError);
    expect((err401 as RunPodUnauthorizedError).status).toBe(401);

    emu.injectFault({ type: 'forbidden-key', apiKey: 'other-key' });
    try {
      const other = new RunPodClient({ apiKey: 'other-key', baseUrl: emu.url });
      const err403 = await rejection(other.getPod('whatever000000'));
      expect(err403).toBeInstanceOf(RunPodForbiddenError);
      expect((err403 as RunPodForbiddenError).detail).toBe('access denied');
    } finally {
      emu.injectFault({ type: 'forbidden-key', apiKey: 'other-key', enabled: false });
    }
  });

  it('classifies 402 insufficient balance', async () => {
    emu.injectFault({ type: 'insufficient-balance' });
    try {
      const err = await rejection(client.createPod(spec()));
      expect(err).toBeInstanceOf(RunPodInsufficientBalanceError);
      expect((err as RunPodApiError).status).toBe(402);
    } finally {
      emu.injectFault({ type: 'insufficient-balance', enabled: false });
    }
  });

  it('classifies 422 with the field names, and a non-capacity 400 as validation', async () => {
    const body = { ...spec(), bogus: 1, gpu: { id: 'NVIDIA L40S', extra: true } } as unknown as CreatePodRequest;
    const err = await rejection(client.createPod(body));
    expect(err).toBeInstanceOf(RunPodValidationError);
    const e = err as RunPodValidationError;
    expect(e.status).toBe(422);
    expect(e.detail).toBe('Request validation failed.');
    expect(e.errors).toContain("$: additional properties 'bogus' not allowed");
    expect(e.errors).toContain("$.gpu: additional properties 'extra' not allowed");
    expect(e.fields).toEqual(expect.arrayContaining(['$.bogus', '$.gpu.extra']));

    const missing = await rejection(client.createPod({ image: 'x', gpu: { id: 'NVIDIA L40S' } } as CreatePodRequest));
    expect((missing as RunPodValidationError).fields).toContain('$.name');

    const both = await rejection(client.createPod(spec({ cpu: { id: 'cpu3c', vcpuCount: 2 } })));
    expect(both).toBeInstanceOf(RunPodValidationError);
    expect((both as RunPodValidationError).status).toBe(400);
    expect(both).not.toBeInstanceOf(RunPodNoCapacityError);
  });

  it('classifies an unknown template as not found', async () => {
    const err = await rejection(client.createPod({ name: 'tpl', templateId: 'nope', gpu: { id: 'NVIDIA L40S' } }));
    expect(err).toBeInstanceOf(RunPodNotFoundError);
  });

  it('waits out 429s on GET within its time budget, fails once the budget is spent, and never repeats a POST', async () => {
    const pod = await client.createPod(spec({ ports: [] }));
    emu.injectFault({ type: 'storm', status: 429, requests: 2, retryAfterS: 1, method: 'GET' });
    const t0 = Date.now();
    expect((await client.getPod(pod.id))?.id).toBe(pod.id);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_900);

    const tight = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url, maxRetryAfterMs: 1_500 });
    emu.injectFault({ type: 'storm', status: 429, requests: 2, retryAfterS: 1, method: 'GET' });
    const spent = await rejection(tight.getPod(pod.id));
    expect(spent).toBeInstanceOf(RunPodRateLimitedError);
    expect((spent as RunPodRateLimitedError).retryAfterS).toBe(1);

    emu.injectFault({ type: 'storm', status: 429, requests: 1, retryAfterS: 1, method: 'POST' });
    const before = emu.calls().length;
    const post = await rejection(client.createPod(spec()));
    expect(post).toBeInstanceOf(RunPodRateLimitedError);
    expect(
      emu
        .calls()
        .slice(before)
        .filter((c) => c.method === 'POST'),
    ).toHaveLength(1);
    await client.deletePod(pod.id);
  });

  it('waits out a 429 on DELETE as on GET', async () => {
    const pod = await client.createPod(spec({ ports: [] }));
    emu.injectFault({ type: 'storm', status: 429, requests: 1, retryAfterS: 1, method: 'DELETE' });
    expect(await client.deletePod(pod.id)).toBe(true);
    const deletes = emu.calls().filter((c) => c.method === 'DELETE' && c.path === `/pods/${pod.id}`);
    expect(deletes.map((c) => c.status)).toEqual([429, 204]);
    expect(await client.getPod(pod.id)).toBeNull();
  });

  it('waits for the latest reset of every exhausted RateLimit window, not only Retry-After', async () => {
    const pod = await client.createPod(spec({ ports: [] }));
    const storm = { type: 'storm', status: 429, requests: 1, retryAfterS: 1, method: 'GET' } as const;
    emu.injectFault({ ...storm, exhausted: [{ window: 'hour', resetS: 3 }] });
    const t0 = Date.now();
    expect((await client.getPod(pod.id))?.id).toBe(pod.id);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_900);

    // A budget shorter than that wait: fails at once, saying how long to wait.
    const tight = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url, maxRetryAfterMs: 2_000 });
    emu.injectFault({
      ...storm,
      exhausted: [
        { window: 'hour', resetS: 3 },
        { window: 'day', resetS: 5 },
      ],
    });
    const t1 = Date.now();
    const err = await rejection(tight.getPod(pod.id));
    expect(Date.now() - t1).toBeLessThan(900);
    expect(err).toBeInstanceOf(RunPodRateLimitedError);
    const e = err as RunPodRateLimitedError;
    expect(e.retryAfterS).toBe(1);
    expect(e.exhaustedResetS).toBe(5);
    expect(e.waitMs).toBe(5_000);
    await client.deletePod(pod.id);
  });

  it('fails fast on a real rate-limit window whose Retry-After exceeds maxRetryAfterMs', async () => {
    emu.setRateLimits({ minute: 2, reset: true });
    try {
      const limited = new RunPodClient({ apiKey: 'limited-key', baseUrl: emu.url, maxRetryAfterMs: 5_000 });
      await limited.listPods();
      await limited.listPods();
      const err = await rejection(limited.listPods());
      expect(err).toBeInstanceOf(RunPodRateLimitedError);
      const e = err as RunPodRateLimitedError;
      expect(e.detail).toBe('rate limit exceeded for the minute window');
      expect(e.retryAfterS).toBeGreaterThan(5);
      expect(e.retryAfterS).toBeLessThanOrEqual(60);
    } finally {
      emu.setRateLimits({ minute: 100_000, reset: true });
    }
  });

  it('classifies 5xx without retrying', async () => {
    emu.injectFault({ type: 'storm', status: 503, requests: 1, method: 'GET', pathPrefix: '/pods' });
    const before = emu.calls().length;
    const err = await rejection(client.listPods());
    expect(err).toBeInstanceOf(RunPodServerError);
    expect((err as RunPodServerError).status).toBe(503);
    expect(emu.calls().length - before).toBe(1);
  });

  it('a create answered 5xx may still have created the pod: the name finds it', async () => {
    emu.injectFault({ type: 'create-5xx', status: 500 });
    const s = spec();
    const err = await rejection(client.createPod(s));
    expect(err).toBeInstanceOf(RunPodServerError);
    const leaked = await client.findPodByName(s.name);
    expect(leaked).not.toBeNull();
    expect(emu.billing().pods.find((p) => p.podId === leaked?.id)?.accruing).toBe(true);
    expect(await client.deletePod(leaked?.id ?? '')).toBe(true);
  });

  it('maps a slow answer to RunPodTimeoutError, a refused connection to RunPodNetworkError, and rethrows aborts', async () => {
    emu.injectFault({ type: 'latency', delayMs: 1_000, requests: 1 });
    const slow = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url, timeoutMs: 150 });
    const timeout = await rejection(slow.listPods());
    expect(timeout).toBeInstanceOf(RunPodTimeoutError);
    expect((timeout as RunPodTimeoutError).status).toBeNull();

    const nowhere = new RunPodClient({ apiKey: API_KEY, baseUrl: 'http://127.0.0.1:1/v2', timeoutMs: 2_000 });
    expect(await rejection(nowhere.getPod('x'))).toBeInstanceOf(RunPodNetworkError);

    emu.injectFault({ type: 'latency', delayMs: 1_000, requests: 1 });
    const ac = new AbortController();
    const reason = new Error('cancelled by test');
    setTimeout(() => ac.abort(reason), 50);
    expect(await rejection(client.listPods({ signal: ac.signal }))).toBe(reason);
  });

  it('sees the timeline: ssh.direct appears only after RUNNING', async () => {
    const pod = await client.createPod(spec());
    expect(pod.status).toBe('PROVISIONING');
    expect(pod.ssh?.direct ?? null).toBeNull();
    expect(pod.runtime ?? null).toBeNull();
    expect(podSshEndpoint(pod)).toBeNull();
    const seen = new Set<string>();
    const ready = await waitFor(async () => {
      const p = await client.getPod(pod.id);
      if (p) seen.add(p.status);
      return p && podSshEndpoint(p) ? p : null;
    });
    expect(seen.has('RUNNING')).toBe(true);
    const endpoint = podSshEndpoint(ready);
    expect(endpoint?.host).toBe('127.0.0.1');
    expect(endpoint?.port).toBe(ready.ssh?.direct?.port);
    expect(endpoint?.username).toBeTruthy();
    await client.deletePod(pod.id);
    expect(emu.billing().pods.find((p) => p.podId === pod.id)?.accruing).toBe(false);
  });
});

describe('pure helpers', () => {
  it('toPhase maps every documented status and throws on an unknown one', () => {
    expect(toPhase('PROVISIONING')).toBe('starting');
    expect(toPhase('STARTING')).toBe('starting');
    expect(toPhase('RUNNING')).toBe('running');
    expect(toPhase('EXITED')).toBe('exited');
    expect(toPhase('ERROR')).toBe('failed');
    expect(toPhase('TERMINATED')).toBe('gone');
    expect(() => toPhase('HIBERNATING')).toThrow(RunPodProtocolError);
  });

  it('podSshEndpoint uses ssh.direct, else a public 22/tcp runtime port, and only when RUNNING', () => {
    const base: Pod = { id: 'p', name: 'n', status: 'RUNNING' };
    expect(podSshEndpoint(base)).toBeNull();
    expect(podSshEndpoint({ ...base, ssh: { direct: { host: '1.2.3.4', port: 2222, username: 'root' } } })).toEqual({
      host: '1.2.3.4',
      port: 2222,
      username: 'root',
    });
    const runtime = { ports: [{ private: 22, public: 35558, type: 'tcp', ip: '213.173.104.74' }] };
    expect(podSshEndpoint({ ...base, runtime })).toEqual({ host: '213.173.104.74', port: 35558, username: 'root' });
    expect(podSshEndpoint({ ...base, status: 'STARTING', runtime })).toBeNull();
    expect(
      podSshEndpoint({ ...base, runtime: { ports: [{ private: 22, public: null, type: 'tcp', ip: null }] } }),
    ).toBeNull();
    expect(
      podSshEndpoint({ ...base, runtime: { ports: [{ private: 8000, public: 1, type: 'http', ip: '100.65.0.1' }] } }),
    ).toBeNull();
  });
});
