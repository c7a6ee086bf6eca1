// startVllm's branches against a scripted pod (test/support/fake-pod-shell.ts): each test is the transcript of
// commands the activity sends and what the pod answers. The same branches run on real sshd pods in
// test/activities/pod-activities.test.ts.
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import {
  createVllmActivities,
  vllmServeCommand,
  type StartVllmInput,
  type StartVllmOutput,
} from '../../src/activities/vllm/index.js';
import type { VllmSettings } from '../../src/study/schema.js';
import { cmd, FakePodConnector, startsWith, type Expectation } from '../support/fake-pod-shell.js';

const WS = '/workspace';
const MODEL = 'Qwen/Qwen3-30B-A3B-Instruct-2507';
const BASE = 'http://127.0.0.1:8000';

const input = (over: Partial<VllmSettings> = {}): StartVllmInput => ({
  endpoint: {
    ssh: { host: 'pod.test', port: 22, username: 'root', hostKeySha256: 'SHA256:pod' },
    workspaceDir: WS,
  },
  modelDir: `${WS}/models/Qwen3-30B-A3B-Instruct-2507`,
  servedModelName: MODEL,
  vllm: {
    version: '0.11.0',
    dtype: 'bfloat16',
    maxModelLen: 262144,
    maxNumSeqs: 16,
    maxNumBatchedTokens: 8192,
    seed: 0,
    gpuMemoryUtilization: 0.9,
    enablePrefixCaching: false,
    port: 8000,
    startupTimeoutMs: 60_000,
    ...over,
  },
  tensorParallelSize: 1,
  weightBytes: 61_000_000_000,
});
const COMMAND_LINE = vllmServeCommand(input()).commandLine;

// Startup failures as vLLM prints them (the texts of test/unit/vllm-log.test.ts).
const V1_KV =
  '(EngineCore_DP0 pid=18799) ERROR 10-08 20:33:48 [core.py:708] ValueError: To serve at least one request with the ' +
  "models's max seq len (262144), (24.00 GiB KV cache is needed, which is larger than the available KV cache memory " +
  '(9.20 GiB). Based on the available memory, the estimated maximum model length is 98160. Try increasing ' +
  '`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.';
const OOM =
  'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB. GPU 0 has a total capacity of 79.19 GiB ' +
  'of which 301.06 MiB is free. Including non-PyTorch memory, this process has 78.88 GiB memory in use.';
const HELD =
  'ValueError: Free memory on device (12.5/79.19 GiB) on startup is less than desired GPU memory utilization (0.9, ' +
  '71.27 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.';
const crashLog = (line: string) =>
  `INFO 11-28 12:00:00 [core.py:93] Initializing a V1 LLM engine\nTraceback (most recent call last):\n  File "x.py", line 1\n${line}\nRuntimeError: Engine core initialization failed. See root cause above.\n`;

// The pod's side of the conversation, one matcher per kind of command startVllm sends (src/activities/ssh/remote.ts).
const pod = {
  recordedCommandLine: (stdout: string) =>
    cmd(startsWith(`cat '${WS}/vllm/cmdline'`), stdout ? stdout : { code: 1 }, { label: 'read vllm/cmdline' }),
  pid: (state: 'alive' | 'dead', times?: Expectation['times']) =>
    cmd('echo alive; else echo dead', `${state}\n`, { label: `vllm/pid is ${state}`, ...(times ? { times } : {}) }),
  /** `/health`'s HTTP status (`000`: nothing answers the port). */
  health: (status: string, times?: Expectation['times']) =>
    cmd(`-m 5 '${BASE}/health'`, status, { label: `GET /health -> ${status}`, ...(times ? { times } : {}) }),
  models: cmd(`curl -s -m 10 '${BASE}/v1/models'`, JSON.stringify({ data: [{ id: MODEL }] })),
  version: cmd(`curl -s -m 10 '${BASE}/version'`, JSON.stringify({ version: '0.11.0' })),
  warmUp: cmd(`'${BASE}/v1/chat/completions'`, '200'),
  readMs: (file: 'load_ms' | 'started_at_ms', ms: number) => cmd(startsWith(`cat '${WS}/vllm/${file}'`), String(ms)),
  writeLoadMs: cmd(new RegExp(`^printf '%s' \\d+ > '${WS}/vllm/load_ms'$`), '', { label: 'write vllm/load_ms' }),
  /** killDetached of the pid file: the old server, or a slow one. */
  stopServer: (times?: number) =>
    cmd(`rm -f '${WS}/vllm/pid'; fi`, '', { label: 'stop the vLLM of vllm/pid', ...(times ? { times } : {}) }),
  files: cmd(`: > '${WS}/vllm/vllm.log'`, '', { label: 'reset vllm/ (cmdline, log)' }),
  start: cmd('setsid nohup sh -c', 'started 4242\n', { label: 'start vLLM detached' }),
  writeStartedAt: cmd(new RegExp(`^printf '%s' \\d+ > '${WS}/vllm/started_at_ms'$`), '', {
    label: 'write vllm/started_at_ms',
  }),
  touch: (times?: Expectation['times']) => cmd(`touch '${WS}/heartbeat'`, '', times ? { times } : {}),
  log: (lines: number, text: string) => cmd(`tail -n ${lines} '${WS}/vllm/vllm.log'`, text),
  findStale: (pids: number[]) =>
    cmd(`grep -qF -- ' serve ${WS}/models/'`, pids.map((p) => `${p}\n`).join(''), { label: 'find stale vLLM' }),
  killPids: (pids: number[]) =>
    cmd(`for p in ${pids.join(' ')}; do kill -TERM`, '', { label: `kill ${pids.join(' ')}` }),
  gpuName: cmd('--query-gpu=name,memory.total', 'NVIDIA H100 80GB HBM3, 81559 MiB\n'),
  gpuHolders: (stdout: string) => cmd('--query-compute-apps=pid,process_name,used_memory', stdout),
};

/** launch(): stop the old server, check the port is free, reset the files, start detached, record the start time. */
const launch = (): Expectation[] => [pod.stopServer(), pod.health('000'), pod.files, pod.start, pod.writeStartedAt];
/** One round of waitForHealth: heartbeat file, pid, then /health while alive. */
const poll = (state: 'alive' | 'dead', health = '200'): Expectation[] =>
  state === 'alive' ? [pod.touch(), pod.pid('alive'), pod.health(health)] : [pod.touch(), pod.pid('dead')];
/** Ready: the model is listed, the load time recorded, the warm-up answered, the version read. */
const ready = (): Expectation[] => [pod.models, pod.writeLoadMs, pod.warmUp, pod.version];

type Outcome = { value: StartVllmOutput; heartbeats: unknown[] } | { err: unknown; heartbeats: unknown[] };

/** Runs startVllm against the scripted pod as the worker would (failures converted once), then checks the script. */
async function startVllm(fake: FakePodConnector, i: StartVllmInput = input()): Promise<Outcome> {
  const acts = withFailureConversion(createVllmActivities({ connector: fake, pollIntervalMs: 1 }));
  const env = new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const result: Promise<StartVllmOutput> = env.run((x: StartVllmInput) => acts.startVllm(x), i);
  const outcome = await result.then(
    (value) => ({ value, heartbeats }),
    (err: unknown) => ({ err, heartbeats }),
  );
  fake.verify(); // first: an off-script command explains any surprise below
  return outcome;
}

async function started(fake: FakePodConnector, i?: StartVllmInput): Promise<StartVllmOutput> {
  const o = await startVllm(fake, i);
  if ('err' in o) throw o.err;
  return o.value;
}

async function failed(fake: FakePodConnector, i?: StartVllmInput): Promise<ApplicationFailure> {
  const o = await startVllm(fake, i);
  if (!('err' in o)) throw new Error(`expected startVllm to fail, got ${JSON.stringify(o.value)}`);
  expect(o.err).toBeInstanceOf(ApplicationFailure);
  return o.err as ApplicationFailure;
}

describe('startVllm on a scripted pod', () => {
  it('reuses a healthy server started with the same command line, with its original load time', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(COMMAND_LINE),
        pod.pid('alive'),
        pod.health('200'),
        pod.models,
        pod.readMs('load_ms', 91_234),
        pod.version,
      ],
    });
    const out = await started(fake);
    expect(out).toEqual({
      baseUrl: BASE,
      version: '0.11.0',
      commandLine: COMMAND_LINE,
      loadTimeMs: 91_234,
      reused: true,
      cleanedUpPids: [],
    });
    expect(fake.connections).toBe(1);
  });

  it('replaces a live server with other settings: stops it, starts anew, waits through loading', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(vllmServeCommand(input({ maxNumSeqs: 4 })).commandLine),
        pod.pid('alive'),
        ...launch(),
        ...poll('alive', '503'),
        ...poll('alive', '200'),
        ...ready(),
      ],
    });
    const o = await startVllm(fake);
    if ('err' in o) throw o.err;
    expect(o.value).toMatchObject({ reused: false, commandLine: COMMAND_LINE, cleanedUpPids: [], version: '0.11.0' });
    expect(o.value.loadTimeMs).toBeGreaterThanOrEqual(0);
    expect(o.heartbeats).toHaveLength(2);
    expect(o.heartbeats[0]).toMatchObject({ stage: 'loading' });
    // The new settings were recorded before the start, so the next attempt can compare them.
    const files = fake.calls.find((c) => c.target.includes(`> '${WS}/vllm/cmdline'`));
    expect(files?.target).toContain("'\\''--max-num-seqs'\\'' '\\''16'\\''");
  });

  it('waits for a server of the same settings that is still loading, timing the load from its original start', async () => {
    const startedAtMs = Date.now() - 5_000;
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(COMMAND_LINE),
        pod.pid('alive'),
        pod.health('503'),
        pod.readMs('started_at_ms', startedAtMs),
        ...poll('alive', '200'),
        ...ready(),
      ],
    });
    const out = await started(fake);
    expect(out.reused).toBe(false);
    expect(out.loadTimeMs).toBeGreaterThanOrEqual(5_000);
  });

  it.each([
    {
      name: 'the KV cache check (V1)',
      log: V1_KV,
      details: {
        reason: 'kv-cache',
        numbers: { maxModelLen: 262144, kvCacheNeededGiB: 24, kvCacheAvailableGiB: 9.2, estimatedMaxModelLen: 98160 },
      },
      says: 'set vllm.maxModelLen to at most 98160',
    },
    {
      name: 'CUDA out of memory',
      log: OOM,
      details: {
        reason: 'out-of-memory',
        numbers: { triedToAllocateGiB: 0.5, gpuIndex: 0, gpuTotalGiB: 79.19, gpuFreeGiB: 0.29 },
      },
      says: 'Suggestion: lower vllm.maxNumSeqs or vllm.maxModelLen',
    },
  ])(
    'a model that does not fit ($name) fails for good, with the numbers and the GPU',
    async ({ log, details, says }) => {
      const fake = new FakePodConnector({
        script: [
          pod.recordedCommandLine(''),
          pod.pid('dead'),
          ...launch(),
          ...poll('dead'),
          pod.log(3000, crashLog(log)),
          pod.gpuName,
        ],
      });
      const f = await failed(fake);
      expect(f).toMatchObject({ type: 'ModelDoesNotFitError', nonRetryable: true });
      expect(f.details?.[0]).toEqual(details);
      expect(f.message).toContain(
        `${MODEL} does not fit NVIDIA H100 80GB HBM3, 81559 MiB (x1) at max-model-len 262144`,
      );
      expect(f.message).toContain('weights 56.8 GiB');
      expect(f.message).toContain(says);
    },
  );

  it('GPU memory held by a stale vLLM of this workspace: kills it and starts again', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'),
        ...launch(),
        ...poll('dead'),
        pod.log(3000, crashLog(HELD)),
        pod.findStale([4242, 4243]),
        pod.killPids([4242, 4243]),
        ...launch(),
        ...poll('alive', '200'),
        ...ready(),
      ],
    });
    const out = await started(fake);
    expect(out).toMatchObject({ reused: false, cleanedUpPids: [4242, 4243] });
  });

  it('GPU memory held by someone else: retryable, naming the holders nvidia-smi lists, their processes left alone', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'),
        ...launch(),
        ...poll('dead'),
        pod.log(3000, crashLog(HELD)),
        pod.findStale([]),
        pod.gpuHolders('777, python3, 70000 MiB\n778, jupyter, 1200 MiB\n'),
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
    expect(f.message).toContain(
      'GPU memory is held by another process (nvidia-smi: 777, python3, 70000 MiB; 778, jupyter',
    );
    expect(f.message).toContain('Free memory on device (12.5/79.19 GiB)');
    expect(f.message).not.toContain('even after');
  });

  it('GPU memory still held after killing the stale vLLM: one cleanup only, then retryable with what was killed', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'),
        ...launch(),
        ...poll('dead'),
        pod.log(3000, crashLog(HELD)),
        pod.findStale([4242]),
        pod.killPids([4242]),
        ...launch(),
        ...poll('dead'),
        pod.log(3000, crashLog(HELD)),
        pod.gpuHolders('777, python3, 70000 MiB\n'),
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
    expect(f.message).toContain('held by another process even after killing stale vLLM 4242 (nvidia-smi: 777');
  });

  it('refuses a port another server answers on when no vLLM of this workspace is behind it', async () => {
    const fake = new FakePodConnector({
      script: [pod.recordedCommandLine(''), pod.pid('dead'), pod.stopServer(), pod.health('404'), pod.findStale([])],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
    expect(f.message).toContain('port 8000 on the pod already answers, and not from a vLLM this workspace started');
  });

  it('refuses the port when it still answers after killing the stale vLLM of this workspace', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'),
        pod.stopServer(),
        pod.health('200'),
        pod.findStale([4242]),
        pod.killPids([4242]),
        pod.health('200'),
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
    expect(f.message).toContain('port 8000 on the pod already answers');
  });

  it('takes the port over when it was a stale vLLM of this workspace that answered', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'),
        pod.stopServer(),
        pod.health('200'),
        pod.findStale([4242]),
        pod.killPids([4242]),
        pod.health('000'),
        pod.files,
        pod.start,
        pod.writeStartedAt,
        ...poll('alive', '200'),
        ...ready(),
      ],
    });
    expect(await started(fake)).toMatchObject({ reused: false, cleanedUpPids: [4242] });
  });

  it('an unknown crash at startup is retryable, with the log line that says most', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'),
        ...launch(),
        ...poll('dead'),
        pod.log(3000, 'INFO starting\nImportError: libcudart.so.12: cannot open shared object file\n'),
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
    expect(f.message).toContain('vLLM exited during startup: ImportError: libcudart.so.12');
  });

  it('a server not healthy within the startup timeout is stopped, and the attempt fails retryably with its log', async () => {
    // How many polls fit in the timeout depends on the clock: this script counts calls instead of ordering them.
    const fake = new FakePodConnector({
      ordered: false,
      script: [
        pod.recordedCommandLine(''),
        pod.pid('dead'), // before the start
        pod.pid('alive', { min: 1 }),
        pod.stopServer(2), // the old one at launch, the slow one at the timeout
        pod.health('000'), // the port check
        pod.health('503', { min: 1 }),
        pod.files,
        pod.start,
        pod.writeStartedAt,
        pod.touch({ min: 1 }),
        pod.log(40, 'INFO Loading safetensors checkpoint shards: 50% Completed | 8/16\n'),
      ],
    });
    const f = await failed(fake, input({ startupTimeoutMs: 1 }));
    expect(f).toMatchObject({ type: 'VllmStartFailedError', nonRetryable: false });
    expect(f.message).toContain('vLLM not healthy after 1 ms. Log tail:\nINFO Loading safetensors checkpoint shards');
    expect(fake.calls.at(-1)?.target).toContain(`rm -f '${WS}/vllm/pid'`); // stopped before the failure
  });

  it('an off-script command fails the activity and names the command and what was expected', async () => {
    const fake = new FakePodConnector({ script: [pod.recordedCommandLine(''), pod.stopServer()] });
    const o = await startVllm(fake).catch((e: unknown) => e);
    expect(o).toBeInstanceOf(Error);
    expect((o as Error).message).toMatch(
      /unexpected calls:\n {2}#2 exec if \[ -f '\/workspace\/vllm\/pid' \].*echo alive/,
    );
    expect((o as Error).message).toContain('expected one of:\n      - exec stop the vLLM of vllm/pid (came 0 of 1)');
    expect((o as Error).message).toContain('expected but never came:\n  - exec stop the vLLM of vllm/pid');
  });
});
