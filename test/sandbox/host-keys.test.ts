// SSH host-key pinning against real sandbox pods (OpenSSH sshd on loopback): a pinned key must match, a wrong or
// missing pin is refused and never retried, readiness pins the pod's real key, and a pod whose sshd key changes
// after readiness fails the next activity with a non-retryable HostKeyMismatchError.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import {
  hostKeyFingerprint,
  ReconnectingPodShell,
  SshPodConnector,
  type PodConnector,
  HostKeyMismatchError,
  type PodEndpoint,
  type SshTarget,
} from '../../src/activities/ssh/index.js';
import { createRunPodActivities } from '../../src/activities/runpod/activities.js';
import { RunPodClient, type WaitForPodReadyInput } from '../../src/activities/runpod/index.js';
import { ErrorTypes } from '../../src/shared/errors.js';
import type { StopPodWorkInput } from '../../src/activities/workspace/index.js';
import { startRunPodEmulator, type RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import { createdPodWithSsh, pinned, podSideActivities, until } from '../activities/sandbox-pod.js';

const API_KEY = 'host-keys-key';
const dir = mkdtempSync(join(tmpdir(), 'host-keys-'));
let emu: RunPodEmulator;
let client: RunPodClient;
let connector: SshPodConnector;
let publicKey: string;
let seq = 0;

/** This file's waits: a swap restarts an sshd, slower on a busy machine. */
const WAIT_MS = 30_000;

/** A created pod once RunPod lists its SSH port (no connection made yet): its id and unpinned target. */
const newPod = () =>
  createdPodWithSsh({ client, name: `gpustudy--hk--p--m--t${++seq}-r0`, publicKey, timeoutMs: WAIT_MS });

const internals = (podId: string) => emu.pods().find((p) => p.id === podId);
const OTHER_KEY = `SHA256:${'A'.repeat(43)}`;

function run<I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O> {
  return new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') }).run(fn, input);
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** Counts every connection attempt: the reconnect logic must not loop on a wrong key. */
function counting(inner: PodConnector): PodConnector & { calls: number } {
  const c = {
    calls: 0,
    connect: (t: SshTarget, o?: Parameters<PodConnector['connect']>[1]) => {
      c.calls += 1;
      return inner.connect(t, o);
    },
  };
  return c;
}

beforeAll(async () => {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id_ed25519')]);
  publicKey = readFileSync(join(dir, 'id_ed25519.pub'), 'utf8').trim();
  connector = new SshPodConnector({ privateKeyPath: join(dir, 'id_ed25519'), connectTimeoutMs: 5_000 });
  emu = await startRunPodEmulator({
    apiKeys: [API_KEY],
    timeline: { provisioningDelayMs: 50, startingDelayMs: 50, imagePullDelayMs: 50, portDelayMs: 50 },
    rateLimits: { minute: 100_000, hour: 1_000_000, day: 10_000_000 },
  });
  client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
});

afterEach(async () => {
  emu.clearFaults();
  for (const p of emu.pods()) await client.deletePod(p.id);
});

afterAll(async () => {
  expect(emu?.billing().accruingUsdPerHr ?? 0).toBe(0);
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('host key fingerprints', () => {
  it('match what ssh-keygen -lf prints for the same key', async () => {
    const { podId } = await newPod();
    const pub = `${internals(podId)!.dir}/ssh_host_ed25519_key.pub`;
    const printed = execFileSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }).split(' ')[1];
    const blob = Buffer.from(readFileSync(pub, 'utf8').split(' ')[1]!, 'base64');
    expect(hostKeyFingerprint(blob)).toBe(printed);
    expect(internals(podId)?.hostKeySha256).toBe(printed);
    expect(printed).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('SshPodConnector host key check', () => {
  it('connects when the pod presents the pinned key, and reports it', async () => {
    const { podId, ssh } = await newPod();
    const sh = await connector.connect(pinned(emu, podId, ssh));
    try {
      expect(sh.hostKeySha256).toBe(internals(podId)?.hostKeySha256);
      expect((await sh.exec('echo ok')).stdout.trim()).toBe('ok');
    } finally {
      sh.close();
    }
  });

  it('refuses a pod presenting another key: HostKeyMismatchError naming host:port and both fingerprints', async () => {
    const { podId, ssh } = await newPod();
    const real = internals(podId)!.hostKeySha256!;
    const err = await connector.connect({ ...ssh, hostKeySha256: OTHER_KEY }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const e = err as HostKeyMismatchError;
    expect(e.kind).toBe('host-key');
    expect(e.name).toBe(ErrorTypes.HostKeyMismatch);
    expect(e.message).toContain(`${ssh.host}:${ssh.port}`);
    expect(e.message).toContain(`expected ${OTHER_KEY}`);
    expect(e.message).toContain(`presented ${real}`);
    expect(e.details).toEqual({ hostPort: `${ssh.host}:${ssh.port}`, expected: OTHER_KEY, presented: real });
  });

  it('refuses a target with no pin unless the caller asks for trust on first use', async () => {
    const { podId, ssh } = await newPod();
    const err = await connector.connect(ssh).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as Error).message).toMatch(/no host key pinned/);
    const sh = await connector.connect(ssh, { trustOnFirstUse: true });
    try {
      expect(sh.hostKeySha256).toBe(internals(podId)?.hostKeySha256);
    } finally {
      sh.close();
    }
  });

  it('a wrong key is not retried by the reconnect logic', async () => {
    const { podId, ssh } = await newPod();
    const c = counting(connector);
    const err = await ReconnectingPodShell.open(c, { ...ssh, hostKeySha256: OTHER_KEY }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect(c.calls).toBe(1);

    // A key that changes under an open session: the reconnect after the drop meets the new key and stops there.
    const sh = await ReconnectingPodShell.open(c, pinned(emu, podId, ssh));
    try {
      emu.injectFault({ type: 'pod', effect: 'host-key-swap', podId, afterLogins: 0 });
      await until('the swap', () => (internals(podId)?.hostKeySwaps === 1 ? true : undefined), WAIT_MS);
      emu.injectFault({ type: 'pod', effect: 'ssh-drop', podId });
      await until('the drop', () => (sh.isOpen() ? undefined : true), WAIT_MS);
      const started = Date.now();
      const lost = await sh.exec('echo again').then(
        () => null,
        (e: unknown) => e,
      );
      expect(lost).toBeInstanceOf(HostKeyMismatchError);
      expect(c.calls).toBe(3); // the failed open, the good one, one reconnect
      expect(sh.reconnects).toBe(1);
      // Not the backoff schedule's 15 s of retries.
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      sh.close();
    }
  });
});

describe('pinning at readiness', () => {
  const runpodActs = () =>
    withFailureConversion(createRunPodActivities({ runpod: client, connector, publicKey, pollIntervalMs: 100 }));
  const podActs = () =>
    withFailureConversion(
      podSideActivities({
        connector,
        projectRoot: dir,
        harnessDir: dir,
        resultsDir: join(dir, 'results'),
        pollIntervalMs: 100,
        downloadStallTimeoutMs: 60_000,
        transferLimits: {
          maxFileBytes: 1 << 20,
          maxFilesPerRun: 100,
          maxSessionBytes: 1 << 30,
          maxJsonBytes: 1 << 20,
          maxLogBytes: 1 << 20,
        },
      }),
    );

  const ready = (podId: string) =>
    run((i: WaitForPodReadyInput) => runpodActs().waitForPodReady(i), {
      podId,
      timeoutMs: 20_000,
      defaultWorkspaceDir: '/workspace',
    });
  const stopPodWork = (endpoint: PodEndpoint) => run((i: StopPodWorkInput) => podActs().stopPodWork(i), { endpoint });

  it("waitForPodReady returns the endpoint with the pod's real host key", async () => {
    const { podId } = await newPod();
    const ep = await ready(podId);
    expect(ep.ssh.hostKeySha256).toBe(internals(podId)?.hostKeySha256);
    // The pinned endpoint is what every later activity connects with.
    const out = await stopPodWork(ep);
    expect(out.stopped).toEqual([]);
  });

  it('a pod whose sshd key changes after readiness: the next activity fails with HostKeyMismatchError', async () => {
    const { podId } = await newPod();
    const ep = await ready(podId);
    const before = ep.ssh.hostKeySha256;
    emu.injectFault({ type: 'pod', effect: 'host-key-swap', podId, afterLogins: 0 });
    await until('the swap', () => (internals(podId)?.hostKeySwaps === 1 ? true : undefined), WAIT_MS);
    const after = internals(podId)?.hostKeySha256;
    expect(after).not.toBe(before);

    const f = await failure(stopPodWork(ep));
    expect(f.type).toBe(ErrorTypes.HostKeyMismatch);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(`${ep.ssh.host}:${ep.ssh.port}`);
    expect(f.message).toContain(`expected ${before}`);
    expect(f.message).toContain(`presented ${after}`);
  });
});
