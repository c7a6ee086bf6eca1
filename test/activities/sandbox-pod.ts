// Sandbox pods for activity tests: created through the emulator's REST API (real sshd behind each), reached with
// the production SSH connector. Only test code; the activities under test never see the emulator.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHarnessActivities } from '../../src/activities/harness/index.js';
import { createHubDownloadActivities } from '../../src/activities/hub/index.js';
import { createResultsTransferActivities, type TransferLimits } from '../../src/activities/results/index.js';
import {
  SshPodConnector,
  workspaceProbe,
  type PodConnector,
  type PodEndpoint,
  type SshTarget,
} from '../../src/activities/ssh/index.js';
import { createVllmActivities } from '../../src/activities/vllm/index.js';
import { createWorkspaceActivities } from '../../src/activities/workspace/index.js';
import { createRequest } from '../../src/activities/runpod/activities.js';
import { podSshEndpoint, type RunPodClient } from '../../src/activities/runpod/index.js';
import { RunPodTargetSchema } from '../../src/study/schema.js';
import type { startSandboxServers } from '../../sandbox/daemon.js';
import type { RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';

export type SandboxServers = Awaited<ReturnType<typeof startSandboxServers>>;

/** What the pod-side systems (workspace, download, vLLM, harness, transfer) need, as the worker gives it. */
export interface PodSideDeps {
  connector: PodConnector;
  projectRoot: string;
  harnessDir: string;
  resultsDir: string;
  hfEndpoint?: string;
  hfToken?: string;
  transferLimits: TransferLimits;
  pollIntervalMs: number;
  downloadStallTimeoutMs: number;
  runpodBaseUrl?: string;
  runpodApiKey?: string;
}

/** The activities a pod session runs on its pod, from the per-system factories the worker composes too. */
export function podSideActivities(deps: PodSideDeps) {
  return {
    ...createWorkspaceActivities(deps),
    ...createHubDownloadActivities(deps),
    ...createVllmActivities(deps),
    ...createHarnessActivities(deps),
    ...createResultsTransferActivities(deps),
  };
}

export interface SandboxPod {
  id: string;
  endpoint: PodEndpoint;
}

/** A fresh ed25519 key pair in `dir`; returns the private key's path. */
export function makeKey(dir: string): string {
  const key = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  return key;
}

/**
 * Creates a pod and waits until its SSH answers. `env` is the SSH-session environment of this pod only (the
 * emulator's `pod-env` fault, which applies when the pod's sshd starts: set before the create, removed once the pod
 * answers). Create pods one at a time.
 */
export async function createSandboxPod(
  servers: SandboxServers,
  opts: { apiKey: string; keyPath: string; name: string; env?: Record<string, string> },
): Promise<SandboxPod> {
  const env = opts.env ?? {};
  if (Object.keys(env).length) servers.runpod.injectFault({ type: 'pod-env', env });
  const res = await fetch(`${servers.runpod.url}/pods`, {
    method: 'POST',
    headers: { authorization: `Bearer ${opts.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: opts.name,
      image: 'runpod/pytorch:2.8.0',
      gpu: { id: 'NVIDIA L40S', count: 1 },
      ports: ['22/tcp'],
      env: { PUBLIC_KEY: readFileSync(`${opts.keyPath}.pub`, 'utf8').trim() },
    }),
  });
  const clearEnv = () => {
    if (Object.keys(env).length) {
      servers.runpod.injectFault({ type: 'pod-env', env: Object.fromEntries(Object.keys(env).map((k) => [k, ''])) });
    }
  };
  if (res.status !== 201) {
    clearEnv();
    throw new Error(`create pod: ${res.status} ${await res.text()}`);
  }
  const { id } = (await res.json()) as { id: string };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pod = (await (
      await fetch(`${servers.runpod.url}/pods/${id}`, { headers: { authorization: `Bearer ${opts.apiKey}` } })
    ).json()) as { ssh?: { direct?: { host: string; port: number; username: string } | null } };
    const direct = pod.ssh?.direct;
    if (direct) {
      const ssh = pinned(servers.runpod, id, { host: direct.host, port: direct.port, username: direct.username });
      clearEnv();
      const shell = await connector(opts.keyPath).connect(ssh);
      try {
        const ws = (await shell.exec(workspaceProbe('/workspace'))).stdout.trim();
        return { id, endpoint: { ssh, workspaceDir: ws } };
      } finally {
        shell.close();
      }
    }
    if (Date.now() > deadline) {
      clearEnv();
      throw new Error(`pod ${id} never offered SSH`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `ssh` with the pod's host key pinned, read from the emulator's pod directory (`<pod dir>/ssh_host_ed25519_key.pub`),
 * so tests check the key the way the workflow does after readiness, from a source the connection cannot fake.
 */
export function pinned(emu: RunPodEmulator, podId: string, ssh: SshTarget): SshTarget {
  const key = emu.pods().find((p) => p.id === podId)?.hostKeySha256;
  if (!key) throw new Error(`pod ${podId} has no host key in its directory`);
  return { ...ssh, hostKeySha256: key };
}

export function connector(keyPath: string): SshPodConnector {
  return new SshPodConnector({ privateKeyPath: keyPath, connectTimeoutMs: 10_000 });
}

/** Runs a shell command on the pod (test inspection only) and returns its stdout. */
export async function onPod(keyPath: string, pod: SandboxPod, command: string): Promise<string> {
  const shell = await connector(keyPath).connect(pod.endpoint.ssh);
  try {
    const r = await shell.exec(command, { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`on pod: ${command} -> ${r.code}: ${r.stderr}`);
    return r.stdout;
  } finally {
    shell.close();
  }
}

/** Runs an activity in a mock activity context, collecting its heartbeats. */
export function runActivity<I, O>(
  fn: (input: I) => Promise<O>,
  input: I,
  opts: { onHeartbeat?: (details: unknown, env: MockActivityEnvironment) => void; heartbeatDetails?: unknown } = {},
): { result: Promise<O>; heartbeats: unknown[]; env: MockActivityEnvironment } {
  const env = new MockActivityEnvironment(
    opts.heartbeatDetails === undefined ? {} : { heartbeatDetails: opts.heartbeatDetails },
  );
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => {
    heartbeats.push(d);
    opts.onHeartbeat?.(d, env);
  });
  return { result: env.run(fn, input), heartbeats, env };
}

/**
 * A TCP port free on this host. Sandbox pods share the host's loopback, so tests give each vLLM its own port rather
 * than the study's 8000, which a concurrently running sandbox (or test file) may hold.
 */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** The RunPod target of tests that create pods on the emulator through the real client. */
export const EMULATOR_TARGET = RunPodTargetSchema.parse({
  kind: 'runpod',
  image: 'runpod/pytorch:2.8.0',
  containerDiskGb: 20,
  volumeGb: 20,
  candidates: [{ gpuTypeId: 'NVIDIA L40S', dataCenterIds: ['EU-RO-1'] }],
});

/** Polls `probe` until it returns a value (a condition, never a fixed sleep); fails naming `what`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Creates a pod on the emulator through the real client and waits until RunPod lists its SSH port (no connection
 * made yet): its id and unpinned target.
 */
export async function createdPodWithSsh(input: {
  client: RunPodClient;
  name: string;
  publicKey: string;
  timeoutMs?: number;
}): Promise<{ podId: string; ssh: SshTarget }> {
  const created = await input.client.createPod(
    createRequest(input.name, EMULATOR_TARGET, EMULATOR_TARGET.candidates[0]!, input.publicKey),
  );
  const ssh = await until(
    'SSH',
    async () => {
      const pod = await input.client.getPod(created.id);
      return (pod && podSshEndpoint(pod)) ?? undefined;
    },
    input.timeoutMs,
  );
  return { podId: created.id, ssh };
}
