// The RunPod emulator itself: HTTP contract, validation texts, catalog rules, timeline, faults, billing,
// and the real sshd behind every pod (exec and SFTP through ssh2).
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, utils } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CAPACITY_DETAIL, startRunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import type { RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';

const KEY = 'emu-key';
const FAST = { provisioningDelayMs: 50, startingDelayMs: 50, imagePullDelayMs: 250, portDelayMs: 250 };
const HF_ENDPOINT = 'http://127.0.0.1:9/hf';

type Json = Record<string, unknown>;
interface Endpoint {
  host: string;
  port: number;
  username: string;
}
interface PortMapping {
  private: number;
  public: number | null;
  type: string;
  ip: string | null;
}
interface ApiPod {
  id: string;
  name: string;
  status: string;
  actions: string[];
  cost: number;
  dataCenterId: string;
  ssh: { proxy: Endpoint; direct: Endpoint | null };
  runtime: { uptime: number; ports: PortMapping[] } | null;
  createdAt: string;
}
type ReadyPod = ApiPod & { ssh: { direct: Endpoint } };
interface Problem {
  title: string;
  status: number;
  detail: string;
  errors?: string[];
}
interface PodList {
  pods: ApiPod[];
  pagination?: { nextCursor: string | null; hasNextPage: boolean };
}
interface GpuType {
  id: string;
  manufacturer: string;
  memory: number;
  availability?: string;
  dataCenters?: { id: string }[];
  cudaVersions?: { version: string; available: boolean }[];
}

let emu: RunPodEmulator;
let binDir: string;
let tmp: string;
const keys = utils.generateKeyPairSync('ed25519');

async function api<T = ApiPod>(
  method: string,
  path: string,
  opts: { body?: unknown; key?: string | null; raw?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key !== null) headers.authorization = `Bearer ${opts.key ?? KEY}`;
  if (opts.body !== undefined || opts.raw !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${emu.url}${path}`, {
    method,
    headers,
    body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
}

let n = 0;
function podBody(overrides: Json = {}): Json {
  return {
    name: `emu-test-${++n}`,
    image: 'runpod/pytorch:2.8.0',
    gpu: { id: 'NVIDIA L40S', count: 1 },
    ports: ['22/tcp', '8000/http'],
    env: { PUBLIC_KEY: keys.public },
    ...overrides,
  };
}

async function createPod(overrides: Json = {}): Promise<ApiPod> {
  const r = await api('POST', '/pods', { body: podBody(overrides) });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body;
}

type Maybe<T> = T | null | undefined | false;

async function waitFor<T>(probe: () => Promise<Maybe<T>> | Maybe<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 40));
  }
}

async function getPod(id: string): Promise<ApiPod> {
  return (await api('GET', `/pods/${id}`)).body;
}

async function waitForSsh(id: string): Promise<ReadyPod> {
  return waitFor(async () => {
    const b = await getPod(id);
    return b.ssh?.direct ? (b as ReadyPod) : null;
  });
}

function sshConnect(direct: Endpoint, privateKey: string = keys.private): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on('ready', () => resolve(c))
      .on('error', reject)
      .connect({
        host: direct.host,
        port: direct.port,
        username: direct.username,
        privateKey,
        readyTimeout: 5_000,
      });
  });
}

function exec(c: Client, command: string): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      stream.on('data', (d: Buffer) => (stdout += d.toString()));
      stream.stderr.on('data', () => undefined);
      stream.on('close', (code: number | null) => resolve({ stdout, code }));
    });
  });
}

function sftpWrite(c: Client, path: string, content: string): Promise<void> {
  return new Promise((resolve, reject) => {
    c.sftp((err, sftp) => {
      if (err) return reject(err);
      sftp.writeFile(path, content, (e) => {
        sftp.end();
        if (e) reject(e);
        else resolve();
      });
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'emu-test-'));
  binDir = join(tmp, 'bin');
  await mkdir(binDir);
  await writeFile(join(binDir, 'pod-path-probe'), '#!/bin/sh\necho probe-from-pod-path\n');
  await chmod(join(binDir, 'pod-path-probe'), 0o755);
  emu = await startRunPodEmulator({
    apiKeys: [KEY, 'rl-key'],
    dataDir: join(tmp, 'data'),
    timeline: FAST,
    podPathPrefix: binDir,
    podEnv: { HF_ENDPOINT },
    rateLimits: { minute: 100_000, hour: 1_000_000, day: 10_000_000 },
  });
});

afterAll(async () => {
  await emu?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('HTTP contract', () => {
  it('401 without a key has no RateLimit headers; authenticated replies have them and x-request-id', async () => {
    const anon = await api<Problem>('GET', '/pods', { key: null });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('content-type')).toBe('application/problem+json');
    expect(anon.body).toEqual({ detail: 'missing bearer token', status: 401, title: 'Unauthorized' });
    expect(anon.headers.get('ratelimit')).toBeNull();
    expect((await api('GET', '/pods', { key: 'bad' })).status).toBe(401);

    const ok = await api('GET', '/pods');
    expect(ok.status).toBe(200);
    expect(ok.headers.get('ratelimit-policy')).toMatch(/^"minute";q=100000;w=60, "hour";q=1000000;w=3600/);
    expect(ok.headers.get('ratelimit')).toMatch(/"minute";r=\d+;t=\d+/);
    expect(ok.headers.get('x-request-id')).toBeTruthy();
  });

  it('404 for unknown routes, 405 with Allow, 413 before auth, public openapi.json', async () => {
    const unknown = await api<Problem>('GET', '/nothing/here');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toBe('application/problem+json');
    const v1 = await api('POST', '/pods/abc/stop');
    expect(v1.status).toBe(404);

    const wrong = await api<Problem>('PUT', '/pods');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
    expect(wrong.body.detail).toBe('The requested method is not allowed for this path.');

    const big = await api('POST', '/pods', { key: null, raw: JSON.stringify({ name: 'x'.repeat(102_400) }) });
    expect(big.status).toBe(413);

    const spec = await api<{ paths: Json }>('GET', '/openapi.json', { key: null });
    expect(spec.status).toBe(200);
    expect(spec.body.paths['/v2/pods']).toBeDefined();
  });

  it('429 with Retry-After when a window is exhausted', async () => {
    emu.setRateLimits({ minute: 1, reset: true });
    try {
      expect((await api('GET', '/pods', { key: 'rl-key' })).status).toBe(200);
      const limited = await api<Problem>('GET', '/pods', { key: 'rl-key' });
      expect(limited.status).toBe(429);
      expect(limited.body.detail).toBe('rate limit exceeded for the minute window');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(limited.headers.get('ratelimit')).toMatch(/"minute";r=0;/);
    } finally {
      emu.setRateLimits({ minute: 100_000, reset: true });
    }
  });

  it('pages newest first with opaque cursors and rejects foreign cursors and bad limits', async () => {
    const ids = [
      (await createPod({ ports: [] })).id,
      (await createPod({ ports: [] })).id,
      (await createPod({ ports: [] })).id,
    ];
    const first = await api<PodList>('GET', '/pods?limit=2');
    expect(first.body.pods.map((p) => p.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.pagination?.hasNextPage).toBe(true);
    const cursor = encodeURIComponent(first.body.pagination?.nextCursor ?? '');
    const second = await api<PodList>('GET', `/pods?limit=2&cursor=${cursor}`);
    expect(second.body.pods[0]?.id).toBe(ids[0]);
    expect((await api('GET', '/pods?cursor=bm90LWEtY3Vyc29y')).status).toBe(422);
    expect((await api('GET', `/pods?includeClusterPods=true&cursor=${cursor}`)).status).toBe(422);
    const limit = await api<Problem>('GET', '/pods?limit=1001');
    expect(limit.status).toBe(422);
    expect(limit.body.errors).toEqual(['$.limit: must be <= 1000 but found 1001']);
    expect((await api('GET', '/pods?desiredStatus=RUNNING')).status).toBe(200);
    for (const id of ids) await api('DELETE', `/pods/${id}`);
  });
});

describe('create validation', () => {
  it('names unknown properties at every level, missing fields, enums and patterns', async () => {
    const r = await api<Problem>('POST', '/pods', {
      body: {
        name: 'v',
        image: 'x',
        bogus: 1,
        cloud: 'ALL',
        gpu: { id: 'NVIDIA L40S', count: 0, gpuTypeIds: [], minCudaVersion: '12' },
        mounts: { persistent: { size: 5, path: '/w', extra: 1 } },
        ports: ['22'],
      },
    });
    expect(r.status).toBe(422);
    expect(r.body.title).toBe('Unprocessable Entity');
    expect(r.body.detail).toBe('Request validation failed.');
    expect(r.body.errors).toEqual(
      expect.arrayContaining([
        "$: additional properties 'bogus' not allowed",
        "$.cloud: value must be one of 'SECURE', 'COMMUNITY'",
        "$.gpu: additional properties 'gpuTypeIds' not allowed",
        '$.gpu.count: must be >= 1 but found 0',
        "$.gpu.minCudaVersion: '12' does not match pattern '^\\d+\\.\\d+$'",
        "$.mounts.persistent: additional properties 'extra' not allowed",
        '$.mounts.persistent.size: must be >= 10 but found 5',
        "$.ports[0]: '22' does not match pattern '^\\d{1,5}\\/(http|tcp)$'",
      ]),
    );
    const missing = await api<Problem>('POST', '/pods', { body: { gpu: { id: 'NVIDIA L40S' } } });
    expect(missing.body.errors).toEqual(["$: missing property 'name'", "$: missing property 'image'"]);
    const topCuda = await api<Problem>('POST', '/pods', { body: podBody({ allowedCudaVersions: ['12.8'] }) });
    expect(topCuda.body.errors).toEqual(["$: additional properties 'allowedCudaVersions' not allowed"]);
    const action = await api<Problem>('POST', `/pods/abc/action`, { body: { action: 'reset' } });
    expect(action.status).toBe(422);
    expect(action.body.errors).toEqual(["$.action: value must be one of 'start', 'stop', 'restart', 'terminate'"]);
  });

  it('applies the cross-field 400s', async () => {
    const cases: Json[] = [
      { cpu: { id: 'cpu3c', vcpuCount: 2 } },
      { gpu: undefined },
      { mounts: { persistent: { size: 20, path: '/a' }, network: [{ volumeId: 'v', path: '/b' }] } },
      { gpu: { id: 'NVIDIA L40S', allowedCudaVersions: ['12.8'], minCudaVersion: '12.4' } },
      { gpu: undefined, cpu: { id: 'cpu3c', vcpuCount: 6 } },
    ];
    for (const c of cases) {
      const r = await api<Problem>('POST', '/pods', { body: podBody(c) });
      expect(r.status, JSON.stringify(c)).toBe(400);
      expect(r.body.detail).not.toBe(NO_CAPACITY_DETAIL);
    }
  });

  it('strict-2.9 rejects the newer fields and omits pagination', async () => {
    const old = await startRunPodEmulator({ schemaMode: 'strict-2.9', timeline: FAST });
    try {
      const res = await fetch(`${old.url}/pods`, {
        method: 'POST',
        headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
        body: JSON.stringify({ ...podBody({ ports: [] }), gpu: { id: 'NVIDIA L40S', minRamPerGpu: 48 }, cmd: ['x'] }),
      });
      expect(res.status).toBe(422);
      expect(((await res.json()) as Json).errors).toEqual([
        "$: additional properties 'cmd' not allowed",
        "$.gpu: additional properties 'minRamPerGpu' not allowed",
      ]);
      const list = (await (
        await fetch(`${old.url}/pods?limit=1`, { headers: { authorization: 'Bearer k' } })
      ).json()) as Json;
      expect(list).toEqual({ pods: [] });
    } finally {
      await old.close();
    }
  });
});

describe('catalog and capacity', () => {
  it('enforces include/product coupling and reports availability', async () => {
    expect((await api('GET', '/catalog/gpus?include=AVAILABILITY')).status).toBe(400);
    expect((await api('GET', '/catalog/gpus?product=POD')).status).toBe(400);
    expect((await api('GET', '/catalog/gpus?countryCodes=US')).status).toBe(400);
    expect(
      (await api('GET', '/catalog/gpus?include=AVAILABILITY&product=POD&cudaVersions=12.8&minCudaVersion=12')).status,
    ).toBe(400);
    const plain = await api<{ gpus: GpuType[] }>('GET', '/catalog/gpus');
    expect(plain.body.gpus[0]?.availability).toBeUndefined();

    const withAvail = await api<{ gpus: GpuType[] }>(
      'GET',
      '/catalog/gpus?include=AVAILABILITY&product=POD&count=2&cloud=SECURE',
    );
    const h100 = withAvail.body.gpus.find((g) => g.id === 'NVIDIA H100 80GB HBM3');
    expect(h100?.availability).toBe('HIGH');
    expect(h100?.dataCenters?.map((d) => d.id).sort()).toEqual(['EU-RO-1', 'US-KS-2']);
    expect(h100?.cudaVersions).toEqual([{ version: '12.8', available: true }]);
    const amd = withAvail.body.gpus.find((g) => g.manufacturer === 'AMD');
    expect(amd).toBeDefined();
    expect(amd?.cudaVersions).toBeUndefined();

    const one = await api<GpuType>('GET', `/catalog/gpus/${encodeURIComponent('NVIDIA H200')}`);
    expect(one.body.memory).toBe(141);
    expect((await api('GET', '/catalog/gpus/nope')).status).toBe(404);
    const dcs = await api<{ dataCenters: { id: string; gpuAvailability?: unknown[] }[] }>(
      'GET',
      '/catalog/datacenters?regions=EUROPE&include=GPU_AVAILABILITY',
    );
    expect(dcs.body.dataCenters.map((d) => d.id)).toEqual(['EU-RO-1', 'EU-SE-1']);
    expect(dcs.body.dataCenters[0]?.gpuAvailability?.length).toBeGreaterThan(0);
  });

  it('takes and releases GPUs; no stock means no dataCenters, and a stale catalog lies', async () => {
    const gpu = 'NVIDIA RTX PRO 4500 Blackwell';
    emu.setCapacity({ cells: [{ gpuTypeId: gpu, dataCenterId: 'EU-RO-1', freeGpus: 2 }] });
    const pod = await createPod({ gpu: { id: gpu, count: 2 }, ports: [] });
    expect(pod.cost).toBeCloseTo(1.08);
    expect(pod.dataCenterId).toBe('EU-RO-1');
    const avail = async (): Promise<GpuType> =>
      (await api<GpuType>('GET', `/catalog/gpus/${encodeURIComponent(gpu)}?include=AVAILABILITY&product=POD`)).body;
    expect(await avail()).toMatchObject({ availability: 'NONE' });
    expect((await avail()).dataCenters).toBeUndefined();

    const full = await api<Problem>('POST', '/pods', { body: podBody({ gpu: { id: gpu }, ports: [] }) });
    expect(full.body).toEqual({ detail: NO_CAPACITY_DETAIL, status: 400, title: 'Bad Request' });

    emu.injectFault({ type: 'stale-catalog' });
    expect((await avail()).availability).toBe('HIGH');
    expect((await api('POST', '/pods', { body: podBody({ gpu: { id: gpu }, ports: [] }) })).status).toBe(400);
    emu.injectFault({ type: 'stale-catalog', enabled: false });

    expect((await api('DELETE', `/pods/${pod.id}`)).status).toBe(204);
    expect(emu.state().capacity.find((c) => c.gpuTypeId === gpu)?.freeGpus).toBe(2);
    expect((await api('GET', '/pods/' + pod.id)).body).toEqual({
      detail: 'pod not found',
      status: 404,
      title: 'Not Found',
    });
    expect((await api('DELETE', `/pods/${pod.id}`)).status).toBe(404);
  });

  it('exposes capacity and faults over the control API', async () => {
    const post = await fetch(`${emu.controlUrl}/capacity`, {
      method: 'POST',
      body: JSON.stringify({ cells: [{ gpuTypeId: 'NVIDIA A40x', dataCenterId: 'EU-RO-1', freeGpus: 1 }] }),
    });
    expect(post.status).toBe(400);
    const fault = await fetch(`${emu.controlUrl}/faults`, {
      method: 'POST',
      body: JSON.stringify({ type: 'insufficient-balance' }),
    });
    expect(fault.status).toBe(200);
    const r = await api('POST', '/pods', { body: podBody() });
    expect(r.status).toBe(402);
    await fetch(`${emu.controlUrl}/faults`, { method: 'DELETE' });
    const state = (await (await fetch(`${emu.controlUrl}/state`)).json()) as {
      faults: { insufficientBalance: boolean };
      billing: Json;
    };
    expect(state.faults.insufficientBalance).toBe(false);
    expect(state.billing).toHaveProperty('totalUsd');
  });
});

describe('pods: timeline, sshd, actions, faults, billing', () => {
  it('runs the timeline and serves a real sshd with SetEnv, PATH and SFTP into the workspace', async () => {
    const pod = await createPod({ env: { PUBLIC_KEY: keys.public, JOB_TOKEN: `a "quoted" $value` } });
    expect(pod).toMatchObject({ status: 'PROVISIONING', runtime: null, actions: ['stop', 'terminate'] });
    expect(pod.ssh.direct).toBeNull();
    expect(pod.ssh.proxy.username).toMatch(new RegExp(`^${pod.id}-[0-9a-f]{8}$`));
    expect(pod.createdAt).toMatch(/\.\d{3}Z$/);

    const runningNoRuntime = await waitFor(async () => {
      const b = await getPod(pod.id);
      return b.status === 'RUNNING' ? b : null;
    });
    expect(runningNoRuntime.runtime).toBeNull();
    expect(emu.pods().find((p) => p.id === pod.id)?.sshdPid).toBeNull(); // sshd not started before the port delay

    const ready = await waitForSsh(pod.id);
    const ports = ready.runtime?.ports ?? [];
    expect(ports).toContainEqual({ private: 22, public: ready.ssh.direct.port, type: 'tcp', ip: '127.0.0.1' });
    expect(ports.find((p) => p.private === 8000)?.ip).toMatch(/^100\.65\./);
    const internals = emu.pods().find((p) => p.id === pod.id);
    expect(internals?.sshdPort).toBe(ready.ssh.direct.port);

    const conn = await sshConnect(ready.ssh.direct);
    try {
      expect((await exec(conn, 'echo $POD_WORKSPACE')).stdout.trim()).toBe(internals?.workspaceDir);
      expect((await exec(conn, 'echo $RUNPOD_POD_ID')).stdout.trim()).toBe(pod.id);
      expect((await exec(conn, 'echo "$HF_ENDPOINT"')).stdout.trim()).toBe(HF_ENDPOINT);
      expect((await exec(conn, 'printf %s "$JOB_TOKEN"')).stdout).toBe('a "quoted" $value');
      // PATH comes from SetEnv: a command that exists only in podPathPrefix runs.
      expect((await exec(conn, 'pod-path-probe')).stdout.trim()).toBe('probe-from-pod-path');
      expect((await exec(conn, 'echo $PATH')).stdout).toContain(`${binDir}:/usr/local/bin:/usr/bin:/bin`);
      await sftpWrite(conn, `${internals?.workspaceDir}/hello.txt`, 'written over sftp');
      expect(await readFile(join(internals?.workspaceDir ?? '', 'hello.txt'), 'utf8')).toBe('written over sftp');
    } finally {
      conn.end();
    }

    // Terminate: sshd and the pod directory are gone, billing stops.
    expect((await api('POST', `/pods/${pod.id}/action`, { body: { action: 'terminate' } })).status).toBe(204);
    expect(alive(internals?.sshdPid ?? 0)).toBe(false);
    expect(existsSync(internals?.dir ?? '/nonexistent')).toBe(false);
    expect(await portOpen(ready.ssh.direct.port)).toBe(false);
  });

  it('kills processes a pod started over SSH (setsid, nohup) when it is terminated', async () => {
    const pod = await createPod();
    const ready = await waitForSsh(pod.id);
    const conn = await sshConnect(ready.ssh.direct);
    let pid: number;
    try {
      pid = Number((await exec(conn, 'setsid nohup sleep 300 >/dev/null 2>&1 & echo $!')).stdout.trim());
    } finally {
      conn.end();
    }
    expect(alive(pid)).toBe(true);
    await api('DELETE', `/pods/${pod.id}`);
    await waitFor(() => !alive(pid), 3_000);
  });

  it('observed mode is RUNNING from creation, with runtime null until the image is pulled', async () => {
    const obs = await startRunPodEmulator({ statusMode: 'observed', timeline: FAST });
    try {
      const res = await fetch(`${obs.url}/pods`, {
        method: 'POST',
        headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
        body: JSON.stringify(podBody()),
      });
      const body = (await res.json()) as Json;
      expect(body).toMatchObject({ status: 'RUNNING', runtime: null, ssh: { direct: null } });
    } finally {
      await obs.close();
    }
  });

  it('stop releases compute and kills sshd; start brings it back; invalid actions are 409', async () => {
    const pod = await createPod();
    const ready = await waitForSsh(pod.id);
    const pid = emu.pods().find((p) => p.id === pod.id)?.sshdPid as number;
    expect((await api('POST', `/pods/${pod.id}/action`, { body: { action: 'start' } })).status).toBe(409);

    const stopped = await api('POST', `/pods/${pod.id}/action`, { body: { action: 'stop' } });
    expect(stopped.status).toBe(200);
    expect(stopped.body).toMatchObject({ status: 'EXITED', cost: 0, runtime: null, actions: ['start', 'terminate'] });
    expect(stopped.body.ssh?.direct).toBeNull();
    expect(alive(pid)).toBe(false);
    expect(await portOpen(ready.ssh.direct.port)).toBe(false);
    expect(emu.billing().pods.find((p) => p.podId === pod.id)?.accruing).toBe(false);

    const started = await api('POST', `/pods/${pod.id}/action`, { body: { action: 'start' } });
    expect(started.body.status).toBe('STARTING');
    const again = await waitForSsh(pod.id);
    const conn = await sshConnect(again.ssh.direct);
    conn.end();
    const restarted = await api('POST', `/pods/${pod.id}/action`, { body: { action: 'restart' } });
    expect(restarted.body).toMatchObject({ status: 'RUNNING', runtime: null });
    await api('DELETE', `/pods/${pod.id}`);
  });

  it('startSsh copies the account keys into authorized_keys', async () => {
    const put = await api<{ keys: string[] }>('PUT', '/account/ssh-keys', { body: { keys: [keys.public] } });
    expect(put.body).toEqual({ keys: [keys.public] });
    expect((await api('PUT', '/account/ssh-keys', { body: { keys: ['not a key'] } })).status).toBe(422);
    const pod = await createPod({ env: {}, startSsh: true });
    const ready = await waitForSsh(pod.id);
    const conn = await sshConnect(ready.ssh.direct);
    conn.end();
    await api('DELETE', `/pods/${pod.id}`);
    await api('PUT', '/account/ssh-keys', { body: { keys: [] } });
  });

  it('fault: sshd refuses the key', async () => {
    emu.injectFault({ type: 'pod', effect: 'sshd-refuses', namePrefix: 'refuse-' });
    const pod = await createPod({ name: 'refuse-1' });
    const ready = await waitForSsh(pod.id);
    await expect(sshConnect(ready.ssh.direct)).rejects.toThrow(/authentication/i);
    await api('DELETE', `/pods/${pod.id}`);
  });

  it('fault: a RUNNING pod that never gets ports', async () => {
    emu.injectFault({ type: 'pod', effect: 'no-ports' });
    const pod = await createPod();
    await waitFor(async () => (await getPod(pod.id)).runtime);
    await new Promise((r) => setTimeout(r, FAST.portDelayMs * 3));
    const b = await getPod(pod.id);
    expect(b).toMatchObject({ status: 'RUNNING', ssh: { direct: null } });
    expect(b.runtime?.ports).toEqual([]);
    expect(emu.pods().find((p) => p.id === pod.id)?.sshdPid).toBeNull();
    await api('DELETE', `/pods/${pod.id}`);
  });

  it('fault: ERROR status and a pod that vanishes', async () => {
    const pod = await createPod();
    await waitForSsh(pod.id);
    emu.injectFault({ type: 'pod', effect: 'error', podId: pod.id });
    const errored = await waitFor(async () => {
      const b = await getPod(pod.id);
      return b.status === 'ERROR' ? b : null;
    });
    expect(errored.actions).toEqual(['start', 'terminate']);
    expect(errored.ssh?.direct).toBeNull();

    emu.injectFault({ type: 'pod', effect: 'vanish', podId: pod.id, afterMs: 50 });
    await waitFor(async () => (await api('GET', `/pods/${pod.id}`)).status === 404);
    expect(emu.billing().pods.find((p) => p.podId === pod.id)?.accruing).toBe(false);
  });

  it('fault: storms answer 5xx/429 for N requests', async () => {
    emu.injectFault({ type: 'storm', status: 502, requests: 2, pathPrefix: '/catalog' });
    expect((await api('GET', '/catalog/gpus')).status).toBe(502);
    expect((await api('GET', '/pods')).status).toBe(200);
    expect((await api('GET', '/catalog/gpus')).status).toBe(502);
    expect((await api('GET', '/catalog/gpus')).status).toBe(200);
    emu.injectFault({ type: 'storm', status: 429, requests: 1, retryAfterS: 7 });
    const r = await api('GET', '/pods');
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('7');
  });

  it('fault: a storm 429 reports its exhausted windows in RateLimit, agreeing with Retry-After', async () => {
    emu.injectFault({ type: 'storm', status: 429, requests: 1, retryAfterS: 2 });
    const plain = await api('GET', '/pods');
    expect(plain.status).toBe(429);
    expect(plain.headers.get('retry-after')).toBe('2');
    expect(plain.headers.get('ratelimit')).toMatch(/^"minute";r=0;t=2, "hour";r=\d+;t=\d+, "day";r=\d+;t=\d+$/);
    expect(plain.headers.get('ratelimit-policy')).toMatch(/^"minute";q=\d+;w=60/);

    emu.injectFault({
      type: 'storm',
      status: 429,
      requests: 1,
      retryAfterS: 2,
      exhausted: [{ window: 'day', resetS: 9 }],
    });
    const more = await api('GET', '/pods');
    expect(more.headers.get('retry-after')).toBe('2');
    expect(more.headers.get('ratelimit')).toMatch(/^"minute";r=0;t=2, "hour";r=\d+;t=\d+, "day";r=0;t=9$/);
  });

  it('fault: list-lag keeps a new pod out of GET /pods for a while; GET /pods/{id} finds it at once', async () => {
    const name = `lagging-${Date.now()}`;
    emu.injectFault({ type: 'pod', effect: 'list-lag', namePrefix: name, afterMs: 600 });
    const created = Date.now();
    const pod = await createPod({ name, ports: [] });
    const listed = async () => (await api<PodList>('GET', '/pods')).body.pods.some((p) => p.id === pod.id);
    expect(await listed()).toBe(false);
    expect((await api('GET', `/pods/${pod.id}`)).status).toBe(200);
    await waitFor(listed);
    expect(Date.now() - created).toBeGreaterThanOrEqual(550);
    // Only the matching pod lags.
    const other = await createPod({ ports: [] });
    expect(await (async () => (await api<PodList>('GET', '/pods')).body.pods.some((p) => p.id === other.id))()).toBe(
      true,
    );
    await api('DELETE', `/pods/${pod.id}`);
    await api('DELETE', `/pods/${other.id}`);
  });

  it('fault: create-400 answers a 400 that is neither capacity nor a field error, per GPU type', async () => {
    emu.injectFault({ type: 'create-400', gpuTypeId: 'NVIDIA L40S', detail: 'this pool is paused' });
    try {
      const refused = await api<Problem>('POST', '/pods', { body: podBody({ ports: [] }) });
      expect(refused.status).toBe(400);
      expect(refused.body).toEqual({ detail: 'this pool is paused', status: 400, title: 'Bad Request' });
      const other = await createPod({ gpu: { id: 'NVIDIA RTX A6000', count: 1 }, ports: [] });
      await api('DELETE', `/pods/${other.id}`);
      expect(emu.state().faults.rejectedCreates).toEqual([{ gpuTypeId: 'NVIDIA L40S', detail: 'this pool is paused' }]);
    } finally {
      emu.injectFault({ type: 'create-400', gpuTypeId: 'NVIDIA L40S', enabled: false });
    }
    expect(emu.state().faults.rejectedCreates).toEqual([]);
    const again = await createPod({ ports: [] });
    await api('DELETE', `/pods/${again.id}`);
  });

  it('bills price x count per second from creation until deletion', async () => {
    const pod = await createPod({ gpu: { id: 'NVIDIA H100 80GB HBM3', count: 2 }, ports: [] });
    expect(pod.cost).toBeCloseTo(5.38);
    await new Promise((r) => setTimeout(r, 300));
    const mid = emu.billing().pods.find((p) => p.podId === pod.id);
    expect(mid?.accruing).toBe(true);
    expect(mid?.usd).toBeGreaterThan(0);
    expect(emu.billing().accruingUsdPerHr).toBeGreaterThanOrEqual(5.38);

    await api('DELETE', `/pods/${pod.id}`);
    const atDelete = emu.billing().pods.find((p) => p.podId === pod.id);
    await new Promise((r) => setTimeout(r, 200));
    const later = emu.billing().pods.find((p) => p.podId === pod.id);
    expect(later?.accruing).toBe(false);
    expect(later?.usd).toBe(atDelete?.usd);
    expect(later?.deletedAt).not.toBeNull();
    expect(atDelete?.usd).toBeCloseTo((5.38 * (atDelete?.billedMs ?? 0)) / 3_600_000, 6);
  });
});

describe('close()', () => {
  it('kills every pod sshd and frees the ports', async () => {
    const own = await startRunPodEmulator({ timeline: FAST });
    const headers = { authorization: 'Bearer k', 'content-type': 'application/json' };
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${own.url}/pods`, { method: 'POST', headers, body: JSON.stringify(podBody()) });
      ids.push(((await r.json()) as Json).id as string);
    }
    const internals = await waitFor(() => {
      const pods = own.pods();
      return pods.every((p) => p.sshdPid !== null) ? pods : null;
    });
    const dataDir = own.dataDir;
    await own.close();
    for (const p of internals) {
      expect(alive(p.sshdPid as number)).toBe(false);
      expect(await portOpen(p.sshdPort as number)).toBe(false);
    }
    expect(existsSync(dataDir)).toBe(false);
    expect(own.billing().accruingUsdPerHr).toBe(0);
  });
});
