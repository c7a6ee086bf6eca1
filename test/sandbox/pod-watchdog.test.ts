// The pod watchdog (pod/watchdog.sh, installed by ensureWatchdog) on real sandbox pods (sshd on loopback), and the
// emulator's pod-scoped key: each self-stop mode, idempotent installs, and what the pod key may and may not do.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPodConnector, type PodShell } from '../../src/activities/ssh/index.js';
import { ensureWatchdog } from '../../src/activities/workspace/index.js';
import { RunPodClient } from '../../src/activities/runpod/index.js';
import { startRunPodEmulator, type RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import { createdPodWithSsh, pinned, until } from '../activities/sandbox-pod.js';

const API_KEY = 'watchdog-key';
const SCRIPT = 'pod/watchdog.sh';
const dir = mkdtempSync(join(tmpdir(), 'pod-watchdog-'));
let emu: RunPodEmulator;
let client: RunPodClient;
let connector: SshPodConnector;
let publicKey: string;
let seq = 0;

/** A running pod and an SSH shell on it. */
async function readyPod(): Promise<{ podId: string; ws: string; sh: PodShell }> {
  const { podId, ssh } = await createdPodWithSsh({ client, name: `gpustudy--wd--p--m--t${++seq}-r0`, publicKey });
  const sh = await connector.connect(pinned(emu, podId, ssh));
  const ws = (await sh.exec('printf %s "$POD_WORKSPACE"')).stdout;
  return { podId, ws, sh };
}

const fileOf = (ws: string, name: string) => readFileSync(join(ws, 'watchdog', name), 'utf8');
const stateOf = (ws: string) => {
  try {
    return fileOf(ws, 'state').trim();
  } catch {
    return '';
  }
};

/** Pretend vLLM runs: a detached process group whose pid is in <ws>/vllm/pid. */
async function fakeVllm(sh: PodShell, ws: string): Promise<number> {
  const r = await sh.exec(
    `mkdir -p '${ws}/vllm' && (setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $! > '${ws}/vllm/pid') && sleep 0.2 && cat '${ws}/vllm/pid'`,
  );
  return Number(r.stdout.trim());
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

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

afterAll(async () => {
  for (const p of emu?.pods() ?? []) await client.deletePod(p.id);
  expect(emu.billing().accruingUsdPerHr).toBe(0);
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('pod watchdog', () => {
  it('with the pod key: kept on a second install, re-reads its settings, ends the work and stops the pod', async () => {
    const { podId, ws, sh } = await readyPod();
    try {
      const settings = { podId, staleAfterMs: 3_600_000, checkIntervalMs: 1_000, selfStop: 'pod-key' as const };
      const opts = { ws, settings, scriptPath: SCRIPT, apiBaseUrl: emu.url };
      const first = await ensureWatchdog(sh, opts);
      expect(first).toMatchObject({ state: 'started', stopWith: 'pod-key' });
      const again = await ensureWatchdog(sh, opts);
      expect(again.state).toBe('running');
      await until('watching', () => (stateOf(ws) === 'watching' ? true : undefined));
      const vllm = await fakeVllm(sh, ws);
      expect(alive(vllm)).toBe(true);

      // A prepare with a short limit: the running watchdog picks it up and fires.
      await ensureWatchdog(sh, { ...opts, settings: { ...settings, staleAfterMs: 1_000 } });
      const pod = await until('the pod to stop', () => emu.pods().find((p) => p.id === podId && p.status === 'EXITED'));
      expect(pod.status).toBe('EXITED');
      expect(emu.billing().pods.find((p) => p.podId === podId)?.accruing).toBe(false);
      const log = fileOf(ws, 'log');
      expect(log).toMatch(/no heartbeat from the orchestrator/);
      expect(log).toMatch(/ended .*vllm\/pid/);
      expect(log).toMatch(/stopping pod/);
      expect(alive(vllm)).toBe(false);
    } finally {
      sh.close();
    }
  });

  it('with self-stop off: ends the work, leaves the pod running, and says it bills on', async () => {
    const { podId, ws, sh } = await readyPod();
    try {
      // The work first: with a 1 s limit (and whole-second file times) the watchdog may fire at once.
      const vllm = await fakeVllm(sh, ws);
      const status = await ensureWatchdog(sh, {
        ws,
        settings: { podId, staleAfterMs: 1_000, checkIntervalMs: 1_000, selfStop: 'none' },
        scriptPath: SCRIPT,
        apiBaseUrl: emu.url,
      });
      expect(status.stopWith).toBe('none');
      await until('the watchdog to fire', () => (stateOf(ws) === 'fired-no-stop' ? true : undefined));
      expect(alive(vllm)).toBe(false);
      expect(fileOf(ws, 'log')).toMatch(/NOT stopped/);
      expect(emu.pods().find((p) => p.id === podId)?.status).toBe('RUNNING');
    } finally {
      sh.close();
      await client.deletePod(podId);
    }
  });

  it('the account key goes onto the pod only with the opt-in, readable by its owner only, and leaves without it', async () => {
    const { podId, ws, sh } = await readyPod();
    try {
      const settings = { podId, staleAfterMs: 3_600_000, checkIntervalMs: 1_000 };
      const base = { ws, scriptPath: SCRIPT, apiBaseUrl: emu.url, accountApiKey: API_KEY };
      const optIn = await ensureWatchdog(sh, { ...base, settings: { ...settings, selfStop: 'account-key-opt-in' } });
      expect(optIn.stopWith).toBe('account-key');
      expect(fileOf(ws, 'api-key')).toBe(API_KEY);
      expect(statSync(join(ws, 'watchdog', 'api-key')).mode & 0o777).toBe(0o600);
      expect(fileOf(ws, 'config')).not.toContain(API_KEY);

      const podKey = await ensureWatchdog(sh, { ...base, settings: { ...settings, selfStop: 'pod-key' } });
      expect(podKey.stopWith).toBe('pod-key');
      expect(() => fileOf(ws, 'api-key')).toThrow();

      // Opted in again and gone stale: it stops the pod with the account key.
      await ensureWatchdog(sh, {
        ...base,
        settings: { ...settings, staleAfterMs: 1_000, selfStop: 'account-key-opt-in' },
      });
      await until('the pod to stop', () => emu.pods().find((p) => p.id === podId && p.status === 'EXITED'));
    } finally {
      sh.close();
    }
  });
});

describe("the emulator's pod-scoped key", () => {
  it('reads and stops its own pod, and nothing else', async () => {
    const a = await readyPod();
    const b = await readyPod();
    const key = emu.pods().find((p) => p.id === a.podId)?.podApiKey ?? '';
    expect(key).not.toBe('');
    // What a real pod offers: its id and its own key, in every session's environment.
    const env = await a.sh.exec('printf %s "$RUNPOD_API_KEY:$RUNPOD_POD_ID"');
    expect(env.stdout).toBe(`${key}:${a.podId}`);
    a.sh.close();
    b.sh.close();

    const asPod = new RunPodClient({ apiKey: key, baseUrl: emu.url });
    expect((await asPod.getPod(a.podId))?.id).toBe(a.podId);
    await expect(asPod.getPod(b.podId)).rejects.toThrow(/403/);
    await expect(asPod.listPods()).rejects.toThrow(/403/);
    await expect(asPod.deletePod(a.podId)).rejects.toThrow(/403/);
    const restart = await fetch(`${emu.url}/pods/${a.podId}/action`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'restart' }),
    });
    expect(restart.status).toBe(403);
    const stop = await fetch(`${emu.url}/pods/${a.podId}/action`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'stop' }),
    });
    expect(stop.status).toBe(200);
    expect(emu.pods().find((p) => p.id === a.podId)?.status).toBe('EXITED');

    // Once its pod is terminated, the key is no key at all.
    await client.deletePod(a.podId);
    await expect(asPod.getPod(a.podId)).rejects.toThrow(/401/);
    await client.deletePod(b.podId);
  });

  it('capacity changes can be scheduled for later', async () => {
    emu.setCapacity({ cells: [{ gpuTypeId: 'NVIDIA RTX A6000', dataCenterId: 'US-KS-2', freeGpus: 0 }] });
    emu.setCapacity({ cells: [{ gpuTypeId: 'NVIDIA RTX A6000', dataCenterId: 'US-KS-2', freeGpus: 3 }], afterMs: 300 });
    const free = () =>
      emu.state().capacity.find((c) => c.gpuTypeId === 'NVIDIA RTX A6000' && c.dataCenterId === 'US-KS-2');
    expect(free()?.freeGpus).toBe(0);
    await until('the scheduled change', () => (free()?.freeGpus === 3 ? true : undefined), 5_000);
    expect(() =>
      emu.setCapacity({ cells: [{ gpuTypeId: 'NVIDIA Z1', dataCenterId: 'US-KS-2', freeGpus: 1 }], afterMs: 1 }),
    ).toThrow(/unknown GPU type/);
  });
});
