// The pod-side activities against the sandbox's real servers: emulated pods that are OpenSSH servers, the real `hf`
// CLI against the sandbox Hub (with its fault injection), the simulated vLLM and the Python harness with CodeCarbon.
// The tests share three pods and build on each other in order (download, then vLLM, then inference).
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import {
  createHubActivities,
  HubClient,
  type DownloadHeartbeat,
  type DownloadModelInput,
  type FetchModelMetadataInput,
  type ModelMetadata,
} from '../../src/activities/hub/index.js';
import type { CollectLogsInput, TransferLimits, TransferResultsInput } from '../../src/activities/results/index.js';
import type { InferenceHeartbeat, RunInferenceInput } from '../../src/activities/harness/index.js';
import type { StartVllmInput } from '../../src/activities/vllm/index.js';
import type { PreparePodInput, StopPodWorkInput } from '../../src/activities/workspace/index.js';
import type { VllmSettings } from '../../src/study/schema.js';
import { startSandboxServers } from '../../sandbox/daemon.js';
import { DEFAULT_SHARD_COUNT, shardFileName } from '../../sandbox/hf-server/index.js';
import { HARNESS_DIR } from '../../src/workers/worker.js';
import {
  connector,
  createSandboxPod,
  freePort,
  makeKey,
  onPod,
  runActivity,
  type SandboxPod,
  type SandboxServers,
  podSideActivities,
} from './sandbox-pod.js';

const FIRST = shardFileName(1, DEFAULT_SHARD_COUNT);
const LAST = shardFileName(DEFAULT_SHARD_COUNT, DEFAULT_SHARD_COUNT);
const CAS_ERROR = 'CAS service error : Error : single flight error: Real call failed: IncompleteBody';

/** Small limits, so the tests can cross each with a few kilobytes. */
const limits: TransferLimits = {
  maxFileBytes: 64 * 1024,
  maxFilesPerRun: 8,
  maxSessionBytes: 1024 * 1024,
  maxJsonBytes: 1024 * 1024,
  maxLogBytes: 32 * 1024,
};

/**
 * The `find` of a hostile image (in the pod's ~/.bashrc, which sshd's bash reads): in a run folder named `shim`
 * it lists a name that climbs out of the local run folder, NUL- or newline-separated as the caller asked.
 */
const HOSTILE_FIND = `find() {
  case "$PWD" in
    */runs/shim)
      case " $* " in
        *" -print0 "*) printf './../../escaped.txt\\0./metrics.json\\0' ;;
        *) printf '../../escaped.txt\\nmetrics.json\\n' ;;
      esac ;;
    *) command find "$@" ;;
  esac
}
`;

const vllmSettings = (port: number, over: Partial<VllmSettings> = {}): VllmSettings => ({
  version: '0.11.0',
  dtype: 'bfloat16',
  maxModelLen: 8192,
  maxNumSeqs: 4,
  maxNumBatchedTokens: 8192,
  seed: 0,
  gpuMemoryUtilization: 0.9,
  enablePrefixCaching: false,
  port,
  startupTimeoutMs: 60_000,
  ...over,
});

describe('pod activities on sandbox pods', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pod-acts-'));
  const apiKey = `test-${randomUUID()}`;
  let keyPath: string;
  let servers: SandboxServers;
  let pod: SandboxPod; // downloads, vLLM, inference
  let crashPod: SandboxPod; // its first vLLM dies after 3 requests; the KV cache holds 8192 tokens
  let oomPod: SandboxPod; // every vLLM runs out of memory at startup
  let hostilePod: SandboxPod; // its shell's `find` lies (HOSTILE_FIND); results and logs tests only
  let acts: ReturnType<typeof podSideActivities>;
  let hubActs: ReturnType<typeof createHubActivities>;
  const metadata = new Map<string, ModelMetadata>();
  // vLLM ports of their own: sandbox pods share this host's loopback with any other sandbox running here.
  const ports = { main: 0, crash: 0, oom: 0, stray: 0 };

  beforeAll(async () => {
    keyPath = makeKey(dir);
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
    servers = await startSandboxServers({ dataDir: join(dir, 'runpod'), apiKey });
    acts = withFailureConversion(
      podSideActivities({
        connector: connector(keyPath),
        projectRoot: process.cwd(),
        harnessDir: HARNESS_DIR,
        resultsDir: join(dir, 'results'),
        hfEndpoint: servers.hf.url,
        pollIntervalMs: 300,
        downloadStallTimeoutMs: 60_000,
        transferLimits: limits,
      }),
    );
    hubActs = withFailureConversion(createHubActivities({ hub: new HubClient({ baseUrl: servers.hf.url }) }));
    const create = (name: string, env?: Record<string, string>) =>
      createSandboxPod(servers, { apiKey, keyPath, name: `acts-${name}`, ...(env ? { env } : {}) });
    pod = await create('main');
    crashPod = await create('crash', { VLLM_SIM_FAULT: 'crash-after:3:once', VLLM_SIM_KV_CACHE_TOKENS: '8192' });
    oomPod = await create('oom', { VLLM_SIM_FAULT: 'oom' });
    hostilePod = await create('hostile');
    // sshd's bash reads the pod's ~/.bashrc for every command: the image decides what `find` is.
    await onPod(keyPath, hostilePod, `cat > "$HOME/.bashrc" <<'EOF'\n${HOSTILE_FIND}EOF`);
    await Promise.all([prepare(pod), prepare(crashPod), prepare(oomPod)]);
  });

  afterAll(async () => {
    await servers?.runpod.close();
    await servers?.hf.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const prepare = (p: SandboxPod) =>
    runActivity((i: PreparePodInput) => acts.preparePod(i), {
      endpoint: p.endpoint,
      datasetPath: 'data/synthetic-vultrial.jsonl',
      prompts: [{ name: 'zero-shot', templatePath: 'prompts/zero-shot.txt' }],
      vllmVersion: '0.11.0',
    }).result;

  // The activities as plain functions (they run inside a mock activity context).
  const download = (i: DownloadModelInput) => acts.downloadModel(i);
  const startVllm = (i: StartVllmInput) => acts.startVllm(i);
  const runInference = (i: RunInferenceInput) => acts.runInference(i);
  const fetchMetadata = (i: FetchModelMetadataInput) => hubActs.fetchModelMetadata(i);

  async function expected(repoId: string): Promise<ModelMetadata> {
    const known = metadata.get(repoId);
    if (known) return known;
    const m = await runActivity(fetchMetadata, { repoId, revision: 'main' }).result;
    metadata.set(repoId, m);
    return m;
  }

  async function downloadInput(p: SandboxPod, repoId: string, over: Partial<DownloadModelInput> = {}) {
    return { endpoint: p.endpoint, repoId, revision: 'main', expected: await expected(repoId), ...over };
  }

  /** GETs of one file of one repo that the sandbox Hub has seen (the LFS CDN stand-in serves the bytes). */
  const gets = (repoId: string, file: string) =>
    servers.hf.requests.filter(
      (r) => r.method === 'GET' && r.path.startsWith(`/_lfs/${repoId}/`) && r.path.endsWith(file),
    );

  it('fetchModelMetadata lists every file with the Hub sizes and sha256; a 5xx is retryable, an unknown repo is not', async () => {
    const repo = servers.hf.getRepo('Qwen/Qwen3-30B-A3B-Instruct-2507');
    const m = await expected('Qwen/Qwen3-30B-A3B-Instruct-2507');
    expect(m.commitSha).toBe(repo?.commitSha);
    expect(m.files.map((f) => [f.path, f.bytes])).toEqual(repo?.files.map((f) => [f.path, f.sizeBytes]));
    expect(m.files.find((f) => f.path === FIRST)?.sha256).toBe(repo?.files.find((f) => f.path === FIRST)?.sha256);
    expect(m.files.find((f) => f.path === 'config.json')?.sha256).toBeNull(); // not an LFS file
    expect(m.totalBytes).toBe(repo?.files.reduce((a, f) => a + f.sizeBytes, 0));

    servers.hf.setFaults([{ kind: 'error5xx', file: '@model-info', count: 1, status: 503 }]);
    const fetchMeta = (repoId: string) =>
      runActivity(fetchMetadata, { repoId, revision: 'main' }).result.catch((e: unknown) => e);
    const failed = await fetchMeta('Qwen/Qwen3-4B-Instruct-2507');
    expect(failed).toBeInstanceOf(ApplicationFailure);
    expect(failed).toMatchObject({ type: 'HubApiError', nonRetryable: false });
    const missing = await fetchMeta('Qwen/Nope');
    expect(missing).toMatchObject({ type: 'HubNotFoundError', nonRetryable: true });
  });

  it('downloads pinned to the commit, heartbeats bytes done / total, verifies, writes .complete, then reuses it', async () => {
    const input = await downloadInput(pod, 'Qwen/Qwen3-30B-A3B-Instruct-2507');
    const run = runActivity(download, input);
    const out = await run.result;
    expect(out).toMatchObject({ reused: false, usedXetFallback: false, xetFallback: null, repaired: [] });
    expect(out.commitSha).toBe(input.expected.commitSha);
    expect(out.files.map((f) => [f.path, f.bytes])).toEqual(input.expected.files.map((f) => [f.path, f.bytes]));
    const hbs = run.heartbeats as DownloadHeartbeat[];
    expect(hbs.some((h) => h.stage === 'downloading' && h.bytesDone > 0)).toBe(true);
    expect(hbs.every((h) => h.totalBytes === input.expected.totalBytes)).toBe(true);
    expect(hbs.at(-1)?.stage).toBe('verifying');
    const marker = JSON.parse(await onPod(keyPath, pod, `cat '${out.modelDir}/.complete'`)) as { commitSha: string };
    expect(marker.commitSha).toBe(input.expected.commitSha);

    const again = await runActivity(download, input).result;
    expect(again).toMatchObject({ reused: true, durationMs: 0, commitSha: out.commitSha });
  });

  it('a stalled transfer is killed and resumed with Xet off, keeping the files already done', async () => {
    const repoId = 'Qwen/Qwen3-4B-Instruct-2507';
    servers.hf.setFaults([{ kind: 'stall', repoId, file: FIRST, afterBytes: 256 * 1024, count: 1 }]);
    // A partial file of the Xet attempt (hf keeps them in the download cache): the switch must not append to it.
    const partial = `"$POD_WORKSPACE/models/${repoId.split('/')[1]}/.cache/huggingface/download/x.incomplete"`;
    await onPod(keyPath, pod, `mkdir -p "$(dirname ${partial})" && head -c 4096 /dev/zero > ${partial}`);
    const out = await runActivity(download, await downloadInput(pod, repoId, { stallTimeoutMs: 2_500 })).result;
    expect((await onPod(keyPath, pod, `[ -e ${partial} ] && echo kept || echo dropped`)).trim()).toBe('dropped');
    expect(out.usedXetFallback).toBe(true);
    expect(out.xetFallback?.reason).toBe('stall');
    expect(gets(repoId, FIRST)).toHaveLength(2);
    expect(gets(repoId, FIRST)[0]?.fault).toBe('stall');
    expect(gets(repoId, LAST)).toHaveLength(1); // finished before the stall: not fetched again
    const log = await onPod(keyPath, pod, `cat '${out.modelDir}.download.log'`);
    expect(log).toMatch(/hf download, Xet on[\s\S]*hf download, Xet off/);
  });

  it('a Xet/CAS error in the log switches to plain HTTP at once, long before the stall timeout', async () => {
    const repoId = 'Qwen/Qwen3-4B-Thinking-2507';
    servers.hf.setFaults([{ kind: 'error5xx', repoId, file: FIRST, count: 1, methods: ['GET'], message: CAS_ERROR }]);
    const started = Date.now();
    const out = await runActivity(download, await downloadInput(pod, repoId, { stallTimeoutMs: 120_000 })).result;
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(out.xetFallback).toMatchObject({
      reason: 'xet-error',
      detail: expect.stringContaining('CAS service error') as unknown,
    });
  });

  it('a truncated shard that hf accepted never passes verification: it is deleted and fetched again', async () => {
    const repoId = 'Qwen/Qwen3-235B-A22B-Instruct-2507';
    servers.hf.setFaults([
      { kind: 'truncate', mode: 'short-file', repoId, file: LAST, keepBytes: 300 * 1024, count: 1 },
    ]);
    const input = await downloadInput(pod, repoId);
    const out = await runActivity(download, input).result;
    expect(out.repaired).toHaveLength(1);
    expect(out.repaired[0]).toContain(`${LAST}: ${300 * 1024} bytes on disk`);
    expect(gets(repoId, LAST)).toHaveLength(2);
    expect(out.files.find((f) => f.path === LAST)?.bytes).toBe(
      input.expected.files.find((f) => f.path === LAST)?.bytes,
    );
  });

  it('a plain 5xx fails the attempt retryably; the retry fetches only what is missing', async () => {
    const repoId = 'Qwen/Qwen3-235B-A22B-Thinking-2507';
    servers.hf.setFaults([{ kind: 'error5xx', repoId, file: LAST, count: 1, methods: ['GET'] }]);
    const input = await downloadInput(pod, repoId);
    const failed = await runActivity(download, input).result.catch((e: unknown) => e);
    expect(failed).toMatchObject({ type: 'DownloadFailedError', nonRetryable: false });
    expect((failed as Error).message).toContain('500');
    const out = await runActivity(download, input).result;
    expect(out.reused).toBe(false);
    expect(gets(repoId, FIRST)).toHaveLength(1); // kept from the failed attempt
    expect(gets(repoId, LAST)).toHaveLength(2);
  });

  it('sha256 verification (opt-in) catches a same-size corruption that sizes and headers cannot', async () => {
    const repoId = 'Qwen/Qwen3-30B-A3B-Instruct-2507'; // downloaded and marked complete above
    const modelDir = `${pod.endpoint.workspaceDir}/models/Qwen3-30B-A3B-Instruct-2507`;
    // One flipped byte, with the file's mtime kept: `hf download` then trusts its local metadata and skips the
    // file (it re-hashes only files changed after their metadata), so only our sha256 check can catch it.
    const shard = `'${modelDir}/${FIRST}'`;
    await onPod(
      keyPath,
      pod,
      `m=$(stat -c %Y ${shard}) && python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); ` +
        `b[-1]^=0xff; open(p,'wb').write(bytes(b))" ${shard} && touch -d "@$m" ${shard}`,
    );
    const out = await runActivity(download, await downloadInput(pod, repoId, { verifySha256: true })).result;
    expect(out.reused).toBe(false); // the marker said sha256 was never checked
    expect(out.sha256Verified).toBe(true);
    expect(out.repaired.join('\n')).toContain(`${FIRST}: sha256`);
    const again = await runActivity(download, await downloadInput(pod, repoId, { verifySha256: true })).result;
    expect(again.reused).toBe(true);
  });

  const vllmInput = (p: SandboxPod, port: number, over: Partial<VllmSettings> = {}): StartVllmInput => ({
    endpoint: p.endpoint,
    modelDir: `${p.endpoint.workspaceDir}/models/Qwen3-30B-A3B-Instruct-2507`,
    servedModelName: 'Qwen/Qwen3-30B-A3B-Instruct-2507',
    vllm: vllmSettings(port, over),
    tensorParallelSize: 1,
    weightBytes: 61_000_000_000,
  });

  it('startVllm frees GPU memory held by a stale vLLM of this workspace, starts on loopback, and reuses a healthy server', async () => {
    const input = vllmInput(pod, ports.main);
    // A vLLM this workspace started earlier and lost track of (no pid file) holds the simulated GPU.
    const stray = Number(
      (
        await onPod(
          keyPath,
          pod,
          `cd "$POD_WORKSPACE"; setsid nohup vllm serve '${input.modelDir}' --port ${ports.stray} > stray.log 2>&1 < /dev/null & echo $!`,
        )
      ).trim(),
    );
    for (
      let i = 0;
      i < 100 &&
      (await onPod(keyPath, pod, 'cat "$POD_WORKSPACE/.vllm-sim-gpu" 2>/dev/null || true')).trim() !== String(stray);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const out = await runActivity(startVllm, input).result;
    expect(out).toMatchObject({ reused: false, baseUrl: `http://127.0.0.1:${ports.main}`, cleanedUpPids: [stray] });
    expect(out.commandLine).toContain("'--host' '127.0.0.1'");
    expect(out.commandLine).toContain("'--no-enable-prefix-caching'");
    expect(out.loadTimeMs).toBeGreaterThan(0);
    expect(out.version).toBe('0.11.0+sim');
    expect((await onPod(keyPath, pod, `kill -0 ${stray} 2>/dev/null && echo alive || echo dead`)).trim()).toBe('dead');

    const again = await runActivity(startVllm, input).result;
    expect(again).toMatchObject({ reused: true, loadTimeMs: out.loadTimeMs }); // the original start's load time
  });

  it('startVllm waits for a server of the same settings that is still loading instead of starting another', async () => {
    const slow = await createSandboxPod(servers, {
      apiKey,
      keyPath,
      name: 'acts-slow',
      env: { VLLM_SIM_STARTUP_DELAY_S: '5' },
    });
    await prepare(slow);
    await runActivity(download, await downloadInput(slow, 'Qwen/Qwen3-30B-A3B-Instruct-2507')).result;
    const port = await freePort();
    // The worker goes away while vLLM loads: its activity is cancelled, vLLM keeps loading on the pod.
    const first = runActivity(startVllm, vllmInput(slow, port), {
      onHeartbeat: (d, env) => {
        if ((d as { stage?: string }).stage === 'loading') env.cancel();
      },
    });
    await expect(first.result).rejects.toThrow();
    const pidBefore = (await onPod(keyPath, slow, 'cat "$POD_WORKSPACE/vllm/pid"')).trim();
    const out = await runActivity(startVllm, vllmInput(slow, port)).result;
    expect(out.reused).toBe(false);
    expect(out.loadTimeMs).toBeGreaterThanOrEqual(4_500); // measured from the original start, not the re-attach
    expect((await onPod(keyPath, slow, 'cat "$POD_WORKSPACE/vllm/pid"')).trim()).toBe(pidBefore);
  });

  it('a model that does not fit fails for good, with vLLM numbers and a suggestion (OOM and KV cache)', async () => {
    for (const p of [oomPod, crashPod]) {
      await runActivity(download, await downloadInput(p, 'Qwen/Qwen3-30B-A3B-Instruct-2507')).result;
    }
    const oom = await runActivity(startVllm, vllmInput(oomPod, ports.oom)).result.catch((e: unknown) => e);
    expect(oom).toMatchObject({ type: 'ModelDoesNotFitError', nonRetryable: true });
    const oomMessage = (oom as Error).message;
    expect(oomMessage).toContain('tried to allocate 2 GiB, 1.25 GiB free of 139.81 GiB');
    expect(oomMessage).toMatch(/max-model-len 8192, max-num-seqs 4, gpu-memory-utilization 0.9; weights 56\.8 GiB/);
    expect(oomMessage).toContain('Suggestion: lower vllm.maxNumSeqs or vllm.maxModelLen');

    const kv = await runActivity(startVllm, vllmInput(crashPod, ports.crash, { maxModelLen: 16384 })).result.catch(
      (e: unknown) => e,
    );
    expect(kv).toMatchObject({ type: 'ModelDoesNotFitError', nonRetryable: true });
    expect((kv as Error).message).toContain('set vllm.maxModelLen to at most 8192');
    expect((kv as ApplicationFailure).details?.[0]).toMatchObject({
      reason: 'kv-cache',
      numbers: { maxModelLen: 16384 },
    });
  });

  it('startVllm refuses a port that another server already answers on, rather than measuring through it', async () => {
    const foreign = createServer((_req, res) => res.end('{}')).listen(ports.stray, '127.0.0.1');
    try {
      // On the OOM pod, whose vLLM never runs: killing this pod's own server first must not matter.
      const input = vllmInput(oomPod, ports.stray);
      const err = await runActivity(startVllm, input).result.catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
      expect((err as Error).message).toContain(`port ${ports.stray} on the pod already answers`);
    } finally {
      foreign.close();
    }
  });

  const inferenceInput = (
    p: SandboxPod,
    runId: string,
    port: number,
    over: Partial<Omit<RunInferenceInput['spec'], 'gpuIndices'>> = {},
  ): RunInferenceInput => ({
    endpoint: p.endpoint,
    spec: {
      schemaVersion: 1,
      runId,
      baseUrl: `http://127.0.0.1:${port}`,
      servedModelName: 'Qwen/Qwen3-30B-A3B-Instruct-2507',
      datasetPath: `${p.endpoint.workspaceDir}/data/dataset.jsonl`,
      promptTemplatePath: `${p.endpoint.workspaceDir}/prompts/zero-shot.txt`,
      fewShotPath: null,
      sampling: { temperature: 0.7, topP: 0.8, topK: 20, minP: 0, maxTokens: 256, seed: 1234 },
      concurrency: 2,
      thinking: false,
      codecarbon: { countryIsoCode: 'USA', measurePowerSecs: 1, trackingMode: 'machine' },
      baselineSeconds: 3,
      requestTimeoutS: 30,
      limit: 4,
      gpuIndices: null,
      ...over,
    },
  });

  const attemptsOf = async (p: SandboxPod, runId: string) =>
    (await onPod(keyPath, p, `cat "$POD_WORKSPACE/runs/${runId}/attempts.jsonl"`)).trim().split('\n').length;

  it('runInference re-attaches to the running harness after the worker went away, and survives an SSH drop', async () => {
    // The "worker" dies during the baseline: its activity is cancelled, the harness on the pod runs on.
    const first = runActivity(runInference, inferenceInput(pod, 'reattach', ports.main), {
      onHeartbeat: (d, env) => {
        if ((d as InferenceHeartbeat).stage === 'baseline') env.cancel();
      },
    });
    await expect(first.result).rejects.toThrow();
    const pid = (await onPod(keyPath, pod, 'cat "$POD_WORKSPACE/runs/reattach/harness.pid"')).trim();
    expect((await onPod(keyPath, pod, `kill -0 ${pid} && echo alive`)).trim()).toBe('alive');
    const second = await runActivity(runInference, inferenceInput(pod, 'reattach', ports.main)).result;
    expect(second).toMatchObject({ reattached: true, done: 4, total: 4 });
    expect(await attemptsOf(pod, 'reattach')).toBe(1); // one harness process measured the whole run

    // A network drop cuts the activity's SSH connection mid-run: it reconnects and carries on, no retry needed.
    let dropped = false;
    const third = runActivity(runInference, inferenceInput(pod, 'ssh-drop', ports.main), {
      onHeartbeat: (d) => {
        if (!dropped && (d as InferenceHeartbeat).stage === 'baseline') {
          dropped = true;
          servers.runpod.injectFault({ type: 'pod', podId: pod.id, effect: 'ssh-drop' });
        }
      },
    });
    const out = await third.result;
    expect(dropped).toBe(true);
    expect(out).toMatchObject({ done: 4, total: 4, reattached: false });
    expect(out.sshReconnects).toBeGreaterThanOrEqual(1);
    expect(await attemptsOf(pod, 'ssh-drop')).toBe(1);
  });

  it('a harness killed mid-run is reported to the workflow (RunInterruptedError), not restarted in place', async () => {
    let killed = false;
    const attempt = runActivity(runInference, inferenceInput(pod, 'killed', ports.main, { concurrency: 1, limit: 8 }), {
      onHeartbeat: (d) => {
        if (!killed && (d as InferenceHeartbeat).stage === 'inference') {
          killed = true;
          void onPod(keyPath, pod, 'kill -KILL "$(cat "$POD_WORKSPACE/runs/killed/harness.pid")"');
        }
      },
    });
    const err = await attempt.result.catch((e: unknown) => e);
    expect(killed).toBe(true);
    expect(err).toMatchObject({ type: 'RunInterruptedError', nonRetryable: true });
    expect((err as ApplicationFailure).details?.[0]).toMatchObject({
      runId: 'killed',
      cause: 'harness-died',
      total: 8,
    });
    const alive = await onPod(
      keyPath,
      pod,
      'kill -0 "$(cat "$POD_WORKSPACE/runs/killed/harness.pid")" && echo alive; true',
    );
    expect(alive.trim()).toBe(''); // nothing started a second harness behind the workflow's back
  });

  it("stopPodWork ends the workspace's vLLM and leaves nothing of the session running", async () => {
    const pidOf = 'kill -0 "$(cat "$POD_WORKSPACE/vllm/pid" 2>/dev/null)" 2>/dev/null && echo alive; true';
    if ((await onPod(keyPath, pod, pidOf)).trim() !== 'alive') {
      await runActivity(startVllm, vllmInput(pod, ports.main)).result;
    }
    const pid = (await onPod(keyPath, pod, 'cat "$POD_WORKSPACE/vllm/pid"')).trim();
    const out = await runActivity((i: StopPodWorkInput) => acts.stopPodWork(i), { endpoint: pod.endpoint }).result;
    expect(out.stopped).toContain('vllm/pid');
    expect((await onPod(keyPath, pod, `kill -0 ${pid} 2>/dev/null && echo alive; true`)).trim()).toBe('');
    const again = await runActivity((i: StopPodWorkInput) => acts.stopPodWork(i), { endpoint: pod.endpoint }).result;
    expect(again.stopped).toEqual([]); // an ensure step: nothing left to stop
  });

  it('a server that dies mid-run ends the attempt with ModelServerGoneError; after a restart the same run resumes', async () => {
    const started = await runActivity(startVllm, vllmInput(crashPod, ports.crash)).result; // warm-up: request 1 of 3
    expect(started.reused).toBe(false);
    const input = inferenceInput(crashPod, 'crash', ports.crash, { limit: 6, concurrency: 1, baselineSeconds: 1 });
    const gone = await runActivity(runInference, input).result.catch((e: unknown) => e);
    expect(gone).toMatchObject({ type: 'ModelServerGoneError', nonRetryable: true });
    expect((gone as ApplicationFailure).details?.[0]).toMatchObject({ runId: 'crash', total: 6 });
    const progress = JSON.parse(await onPod(keyPath, crashPod, 'cat "$POD_WORKSPACE/runs/crash/progress.json"')) as {
      state: string;
      done: number;
    };
    expect(progress.state).toBe('failed'); // the harness was stopped and closed its energy window
    expect(progress.done).toBe(2);

    const restarted = await runActivity(startVllm, vllmInput(crashPod, ports.crash)).result;
    expect(restarted.reused).toBe(false);
    // A plain retry never continues the ended run in place: only the workflow's policy decision (resume) does.
    const retried = await runActivity(runInference, input).result.catch((e: unknown) => e);
    expect(retried).toMatchObject({ type: 'RunInterruptedError', nonRetryable: true });
    expect((retried as ApplicationFailure).details?.[0]).toMatchObject({ cause: 'harness-failed', done: 2 });
    const resumed = await runActivity(runInference, { ...input, resume: true }).result;
    expect(resumed).toMatchObject({ done: 6, total: 6 });
    expect(await attemptsOf(crashPod, 'crash')).toBe(2);
    const ids = (await onPod(keyPath, crashPod, 'cat "$POD_WORKSPACE/runs/crash/predictions.jsonl"'))
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: number }).id);
    expect(new Set(ids).size).toBe(6);
    expect(ids).toHaveLength(6);
  });

  // --- Bringing results and logs home from an untrusted pod ---------------------------------------------------------

  const resultsRoot = () => join(dir, 'results');
  const runSubdir = (name: string) => `study/phase/model/zero-shot/${name}`;
  const transfer = (i: TransferResultsInput) => acts.transferResults(i);

  /** A fresh run folder on the pod, filled by `setup` (a shell snippet run inside it). */
  async function runFolder(p: SandboxPod, name: string, setup: string): Promise<string> {
    const remoteDir = `${p.endpoint.workspaceDir}/runs/${name}`;
    await onPod(keyPath, p, `rm -rf '${remoteDir}' && mkdir -p '${remoteDir}' && cd '${remoteDir}' && ${setup}`);
    return remoteDir;
  }
  /** What a finished harness leaves: two results, its pid file and a temp file of an atomic write. */
  const HARNESS_FILES = `printf '{"n":1}' > metrics.json && printf 'a\\n' > predictions.jsonl && echo 1 > harness.pid && printf x > .progress.json.77.tmp`;

  /** Every file below `root`, relative, symlinks included (not followed). */
  function filesUnder(root: string): string[] {
    if (!existsSync(root)) return [];
    return readdirSync(root, { withFileTypes: true, recursive: true })
      .filter((e) => !e.isDirectory())
      .map((e) => relative(root, join(e.parentPath, e.name)))
      .sort();
  }
  /** The files of run folder `name` at home, and proof that nothing else landed anywhere under the results root. */
  function broughtHome(name: string): string[] {
    const prefix = `${runSubdir(name)}/`;
    const all = filesUnder(resultsRoot());
    expect(all.filter((f) => !f.startsWith('study/phase/model/zero-shot/'))).toEqual([]);
    return all.filter((f) => f.startsWith(prefix)).map((f) => f.slice(prefix.length));
  }

  it('transferResults refuses a name with an embedded newline (a forged entry) and keeps the plain files', async () => {
    const remoteDir = await runFolder(
      pod,
      'newline',
      `${HARNESS_FILES} && printf evil > "$(printf 'notes\\n..')" && printf forged > "$(printf 'x\\nmetrics.json')"`,
    );
    const input = { endpoint: pod.endpoint, remoteDir, resultsSubdir: runSubdir('newline') };
    const err = await runActivity(transfer, input).result.catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'UnsafePodFileError', nonRetryable: true });
    const message = (err as Error).message;
    expect(message).not.toContain('\n'); // one line: the pod's names are shown escaped
    expect(message).toContain('"notes\\n.." is not a plain file name');
    expect(message).toContain('"x\\nmetrics.json" is not a plain file name');
    expect(broughtHome('newline')).toEqual(['metrics.json', 'predictions.jsonl']);
    expect(readFileSync(join(resultsRoot(), runSubdir('newline'), 'metrics.json'), 'utf8')).toBe('{"n":1}');
  });

  it("transferResults never writes outside the run folder, whatever the pod's own `find` lists", async () => {
    // The file the lying listing points at exists on the pod: a naive join would copy it two levels up at home.
    await onPod(keyPath, hostilePod, 'printf escaped > "$POD_WORKSPACE/escaped.txt"');
    const remoteDir = await runFolder(hostilePod, 'shim', `printf '{"n":1}' > metrics.json`);
    const input = { endpoint: hostilePod.endpoint, remoteDir, resultsSubdir: runSubdir('shim') };
    const err = await runActivity(transfer, input).result.catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'UnsafePodFileError', nonRetryable: true });
    expect((err as Error).message).toContain('"../../escaped.txt" is not a plain file name');
    expect(filesUnder(resultsRoot()).filter((f) => f.includes('escaped'))).toEqual([]);
    expect(broughtHome('shim')).toEqual(['metrics.json']);
  });

  it('transferResults refuses symlinks, FIFOs and directories, and never writes through a symlink at home', async () => {
    const remoteDir = await runFolder(
      pod,
      'links',
      `${HARNESS_FILES} && printf secret > "$POD_WORKSPACE/secret.txt" && ln -s "$POD_WORKSPACE/secret.txt" link.json && mkfifo pipe.log && mkdir sub`,
    );
    // Left at home before the transfer: links to a file outside, at the destination and at the old temp name.
    const local = join(resultsRoot(), runSubdir('links'));
    mkdirSync(local, { recursive: true });
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, 'untouched');
    symlinkSync(outside, join(local, 'predictions.jsonl'));
    symlinkSync(outside, join(local, 'metrics.json.partial'));
    const input = { endpoint: pod.endpoint, remoteDir, resultsSubdir: runSubdir('links') };
    const err = await runActivity(transfer, input).result.catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'UnsafePodFileError', nonRetryable: true });
    const message = (err as Error).message;
    expect(message).toContain('"link.json" is a symbolic link');
    expect(message).toContain('"pipe.log" is a special file');
    expect(message).toContain('"sub" is a directory');
    expect(readFileSync(outside, 'utf8')).toBe('untouched');
    expect(lstatSync(join(local, 'predictions.jsonl')).isFile()).toBe(true); // the link was replaced, not followed
    expect(readFileSync(join(local, 'predictions.jsonl'), 'utf8')).toBe('a\n');
    expect(broughtHome('links')).toEqual(['metrics.json', 'metrics.json.partial', 'predictions.jsonl']);
    expect(filesUnder(resultsRoot()).some((f) => readFileSync(join(resultsRoot(), f), 'utf8') === 'secret')).toBe(
      false,
    );
  });

  it('transferResults fails an oversized file naming its size, the limit and the setting, keeping the rest', async () => {
    const remoteDir = await runFolder(pod, 'big', `${HARNESS_FILES} && head -c 70000 /dev/zero > big.bin`);
    const input = { endpoint: pod.endpoint, remoteDir, resultsSubdir: runSubdir('big') };
    const err = await runActivity(transfer, input).result.catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'TransferLimitError', nonRetryable: true });
    expect((err as Error).message).toContain(
      `big.bin is 70000 bytes, over the limit of ${limits.maxFileBytes} per file (raise TRANSFER_MAX_FILE_BYTES)`,
    );
    expect(broughtHome('big')).toEqual(['metrics.json', 'predictions.jsonl']);
  });

  it('transferResults brings home at most TRANSFER_MAX_FILES_PER_RUN files, then fails saying so', async () => {
    const remoteDir = await runFolder(
      pod,
      'many',
      'for i in 01 02 03 04 05 06 07 08 09 10 11 12; do echo $i > f$i.txt; done',
    );
    const input = { endpoint: pod.endpoint, remoteDir, resultsSubdir: runSubdir('many') };
    const err = await runActivity(transfer, input).result.catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'TransferLimitError', nonRetryable: true });
    expect((err as Error).message).toContain(
      'the run folder holds 12 files, over the limit of 8 per run (raise TRANSFER_MAX_FILES_PER_RUN)',
    );
    expect(broughtHome('many')).toEqual(['01', '02', '03', '04', '05', '06', '07', '08'].map((i) => `f${i}.txt`));
  });

  it("transferResults counts the session's earlier transfers against TRANSFER_MAX_SESSION_BYTES", async () => {
    const remoteDir = await runFolder(pod, 'session', HARNESS_FILES);
    // 8 bytes left: metrics.json (7) fits, predictions.jsonl (2) does not.
    const input = {
      endpoint: pod.endpoint,
      remoteDir,
      resultsSubdir: runSubdir('session'),
      sessionBytesSoFar: limits.maxSessionBytes - 8,
    };
    const err = await runActivity(transfer, input).result.catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'TransferLimitError', nonRetryable: true });
    expect((err as Error).message).toContain(
      `predictions.jsonl (2 bytes) would bring the session to ${limits.maxSessionBytes + 1} bytes, over its limit of ${limits.maxSessionBytes} (raise TRANSFER_MAX_SESSION_BYTES)`,
    );
    expect(broughtHome('session')).toEqual(['metrics.json']);
    // Within the limits, a second transfer finds the files home and skips them.
    const again = await runActivity(transfer, { ...input, sessionBytesSoFar: 0 }).result;
    expect(again.skipped).toEqual(['metrics.json']);
    expect(again.files.map((f) => [f.name, f.bytes])).toEqual([
      ['metrics.json', 7],
      ['predictions.jsonl', 2],
    ]);
  });

  it('collectLogs brings an oversized log home as its last bytes, and skips links and unsafe names, with notes', async () => {
    await onPod(
      keyPath,
      hostilePod,
      [
        'ws="$POD_WORKSPACE"; mkdir -p "$ws/vllm" "$ws/models"',
        `{ head -c 40000 /dev/zero | tr '\\0' a; printf 'LAST-LINE\\n'; } > "$ws/vllm/vllm.log"`,
        'ln -sf /etc/passwd "$ws/models/evil.download.log"',
        `printf ok > "$ws/models/fine.download.log"`,
        `printf x > "$ws/models/$(printf 'a\\nb').download.log"`,
      ].join('; '),
    );
    const subdir = 'study/phase/model/logs/run1';
    const out = await runActivity((i: CollectLogsInput) => acts.collectLogs(i), {
      endpoint: hostilePod.endpoint,
      resultsSubdir: subdir,
    }).result;
    expect(out.collected).toEqual(['models__fine.download.log', 'vllm__vllm.log']);
    const vllmLog = readFileSync(join(resultsRoot(), subdir, 'vllm__vllm.log'), 'utf8');
    expect(vllmLog).toHaveLength(limits.maxLogBytes);
    expect(vllmLog.endsWith('LAST-LINE\n')).toBe(true);
    const notes = out.notes.join('\n');
    expect(notes).toContain(
      `vllm__vllm.log: 40010 bytes on the pod, over the limit of ${limits.maxLogBytes} (TRANSFER_MAX_LOG_BYTES); brought home its last ${limits.maxLogBytes} bytes`,
    );
    expect(notes).toContain('skipped models__evil.download.log: a symbolic link');
    expect(notes).toContain('a\\nb.download.log');
    expect(filesUnder(join(resultsRoot(), subdir))).toEqual(['models__fine.download.log', 'vllm__vllm.log']);
  });

  it('HF_TOKEN reaches the download through a file: never on a command line, and the file is gone afterwards', async () => {
    const token = `hf_${randomUUID().replace(/-/g, '')}`;
    const tokenActs = withFailureConversion(
      podSideActivities({
        connector: connector(keyPath),
        projectRoot: process.cwd(),
        harnessDir: HARNESS_DIR,
        resultsDir: resultsRoot(),
        hfEndpoint: servers.hf.url,
        hfToken: token,
        pollIntervalMs: 300,
        downloadStallTimeoutMs: 60_000,
        transferLimits: limits,
      }),
    );
    const repoId = 'Qwen/Qwen3-30B-A3B-Thinking-2507';
    // A stall keeps the first `hf download` alive for a while, then the Xet fallback starts a second one.
    servers.hf.setFaults([{ kind: 'stall', repoId, file: FIRST, afterBytes: 256 * 1024, count: 1 }]);
    const commandLines = `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < "$f" 2>/dev/null; echo; done; ps -eo args; true`;
    const snapshots: Promise<string>[] = [];
    let seenFirst = false;
    let seenSecond = false;
    const out = await runActivity(
      (i: DownloadModelInput) => tokenActs.downloadModel(i),
      await downloadInput(oomPod, repoId, { stallTimeoutMs: 2_500 }),
      {
        onHeartbeat: (d) => {
          const hb = d as DownloadHeartbeat;
          if (hb.stage !== 'downloading') return;
          if (!seenFirst && hb.bytesDone > 0) {
            seenFirst = true;
            snapshots.push(onPod(keyPath, oomPod, commandLines));
          } else if (!seenSecond && hb.disableXet) {
            seenSecond = true;
            snapshots.push(onPod(keyPath, oomPod, commandLines));
          }
        },
      },
    ).result;
    expect(out.usedXetFallback).toBe(true); // the token was needed (and written) twice
    const seen = await Promise.all(snapshots);
    expect(seenFirst).toBe(true);
    expect(seen.some((s) => s.includes(`hf download '${repoId}'`))).toBe(true); // looked while it ran
    for (const s of seen) expect(s).not.toContain(token);
    expect(servers.hf.lastBearerToken()).toBe(token); // and yet the Hub got it
    const models = `"$POD_WORKSPACE/models"`;
    expect((await onPod(keyPath, oomPod, `ls -A ${models} | grep -c token; true`)).trim()).toBe('0');
    expect(await onPod(keyPath, oomPod, `cat ${models}/*.download.log`)).not.toContain(token);
  });
});
