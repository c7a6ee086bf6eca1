// runInference's branches against a scripted pod (test/support/fake-pod-shell.ts): each test is the transcript of
// commands the activity sends and what the pod answers. The same branches run on real sshd pods in
// test/activities/pod-activities.test.ts.
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import {
  createHarnessActivities,
  type HarnessProgress,
  type InferenceHeartbeat,
  type RunInferenceInput,
  type RunInferenceOutput,
} from '../../src/activities/harness/index.js';
import { SshError } from '../../src/activities/ssh/index.js';
import { cmd, FakePodConnector, sftp, startsWith, type Expectation } from '../support/fake-pod-shell.js';

const WS = '/workspace';
const RUN_ID = 'rq1-qwen3-zero-shot-r0';
const DIR = `${WS}/runs/${RUN_ID}`;
const BASE = 'http://127.0.0.1:8000';

const input = (over: Partial<RunInferenceInput> = {}): RunInferenceInput => ({
  endpoint: {
    ssh: { host: 'pod.test', port: 22, username: 'root', hostKeySha256: 'SHA256:pod' },
    workspaceDir: WS,
  },
  spec: {
    schemaVersion: 1,
    runId: RUN_ID,
    baseUrl: BASE,
    servedModelName: 'Qwen/Qwen3-30B-A3B-Instruct-2507',
    datasetPath: `${WS}/data/dataset.jsonl`,
    promptTemplatePath: `${WS}/prompts/zero-shot.txt`,
    fewShotPath: null,
    sampling: { temperature: 0.7, topP: 0.8, topK: 20, minP: 0, maxTokens: 256, seed: 1234 },
    concurrency: 2,
    thinking: false,
    codecarbon: { countryIsoCode: 'USA', measurePowerSecs: 1, trackingMode: 'machine' },
    baselineSeconds: 3,
    requestTimeoutS: 30,
    limit: null,
    gpuIndices: null,
  },
  ...over,
});

type Liveness = 'alive' | 'dead';

/** The harness's progress.json (or any text, for a harness that breaks the contract). */
const progress = (state: HarnessProgress['state'], done: number, total: number, more: Partial<HarnessProgress> = {}) =>
  JSON.stringify({ state, stage: 'inference', done, total, tokensPerS: null, ...more });

// The pod's side of the conversation, one matcher per kind of command runInference sends (src/activities/ssh/remote.ts).
const pod = {
  runDir: cmd(`mkdir -p '${DIR}'`),
  spec: sftp('writeFile', `${DIR}/spec.json`),
  /** The one round trip of each poll: heartbeat file, progress.json, then whether the harness and vLLM live. */
  poll: (p: { progress?: string; harness: Liveness; vllm: Liveness }, times?: number) =>
    cmd(
      `cat '${DIR}/progress.json' 2>/dev/null; echo '--8<--'`,
      `${p.progress ?? ''}--8<--\n${p.harness}\n${p.vllm}\n`,
      { label: `poll: harness ${p.harness}, vLLM ${p.vllm}`, ...(times ? { times } : {}) },
    ),
  vllmPid: (state: Liveness) =>
    cmd(startsWith(`if [ -f '${WS}/vllm/pid' ]`), `${state}\n`, { label: `vllm/pid ${state}` }),
  health: (status: string) => cmd(`-m 5 '${BASE}/health'`, status, { label: `GET /health -> ${status}` }),
  start: (answer: 'started' | 'running') =>
    cmd('exec python3 -m harness.run --spec', `${answer} 5151\n`, { label: `start harness -> ${answer}` }),
  stopHarness: cmd(startsWith(`if [ -f '${DIR}/harness.pid' ]; then p=`), '', { label: 'stop the harness' }),
  vllmLog: cmd(`tail -n 15 '${WS}/vllm/vllm.log'`, 'ERROR EngineCore encountered a fatal error\n'),
  harnessLog: cmd(`tail -n 15 '${DIR}/harness.log'`, 'INFO sample 3 answered\n'),
};
/** vLLM's process lives and /health answers 200. */
const serverUp = (): Expectation[] => [pod.vllmPid('alive'), pod.health('200')];
/** A fresh run: nothing on the pod yet, the server up, the harness started. */
const freshStart = (): Expectation[] => [
  pod.runDir,
  pod.spec,
  pod.poll({ harness: 'dead', vllm: 'alive' }),
  ...serverUp(),
  pod.start('started'),
];

type Outcome = { value: RunInferenceOutput; heartbeats: unknown[] } | { err: unknown; heartbeats: unknown[] };

/** Runs runInference against the scripted pod as the worker would (failures converted once), then checks the script. */
async function runInference(fake: FakePodConnector, i: RunInferenceInput = input()): Promise<Outcome> {
  const acts = withFailureConversion(createHarnessActivities({ connector: fake, pollIntervalMs: 1 }));
  const env = new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const result: Promise<RunInferenceOutput> = env.run((x: RunInferenceInput) => acts.runInference(x), i);
  const outcome = await result.then(
    (value) => ({ value, heartbeats }),
    (err: unknown) => ({ err, heartbeats }),
  );
  fake.verify(); // first: an off-script command explains any surprise below
  return outcome;
}

async function completed(fake: FakePodConnector, i?: RunInferenceInput): Promise<RunInferenceOutput> {
  const o = await runInference(fake, i);
  if ('err' in o) throw o.err;
  return o.value;
}

async function failed(fake: FakePodConnector, i?: RunInferenceInput): Promise<ApplicationFailure> {
  const o = await runInference(fake, i);
  if (!('err' in o)) throw new Error(`expected runInference to fail, got ${JSON.stringify(o.value)}`);
  expect(o.err).toBeInstanceOf(ApplicationFailure);
  return o.err as ApplicationFailure;
}

describe('runInference on a scripted pod', () => {
  it('starts the harness, heartbeats its progress and completes when progress.json says done', async () => {
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        pod.poll({ progress: progress('running', 0, 4, { stage: 'baseline' }), harness: 'alive', vllm: 'alive' }),
        pod.poll({ progress: progress('running', 2, 4, { tokensPerS: 812.5 }), harness: 'alive', vllm: 'alive' }),
        // A harness exits right after writing `done`: dead with `done` is success.
        pod.poll({ progress: progress('done', 4, 4, { stage: 'finishing' }), harness: 'dead', vllm: 'alive' }),
      ],
    });
    const o = await runInference(fake);
    if ('err' in o) throw o.err;
    expect(o.value).toMatchObject({ remoteDir: DIR, done: 4, total: 4, reattached: false, sshReconnects: 0 });
    expect(o.heartbeats).toEqual([
      { stage: 'baseline', done: 0, total: 4, tokensPerS: null },
      { stage: 'inference', done: 2, total: 4, tokensPerS: 812.5 },
    ] satisfies InferenceHeartbeat[]);
    const spec = JSON.parse(String(fake.written.get(`${DIR}/spec.json`))) as Record<string, unknown>;
    expect(spec).toMatchObject({ runId: RUN_ID, outputDir: DIR, baseUrl: BASE, schemaVersion: 1 });
  });

  it('re-attaches to a harness of this run that is still running, without checking or restarting anything', async () => {
    const running = progress('running', 1, 4);
    const fake = new FakePodConnector({
      script: [
        pod.runDir,
        pod.spec,
        pod.poll({ progress: running, harness: 'alive', vllm: 'alive' }),
        pod.start('running'),
        pod.poll({ progress: progress('done', 4, 4), harness: 'dead', vllm: 'alive' }),
      ],
    });
    expect(await completed(fake)).toMatchObject({ reattached: true, done: 4, total: 4 });
  });

  it('vLLM dying mid-run stops the harness, then fails with ModelServerGoneError and where the run stood', async () => {
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        pod.poll({ progress: progress('running', 2, 6), harness: 'alive', vllm: 'dead' }),
        pod.stopHarness,
        pod.vllmLog,
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'ModelServerGoneError', nonRetryable: true });
    expect(f.details?.[0]).toEqual({ runId: RUN_ID, done: 2, total: 6 });
    expect(f.message).toContain(`the model server is gone (its process exited) during run ${RUN_ID} at 2/6 samples`);
    expect(f.message).toContain('ERROR EngineCore encountered a fatal error');
  });

  it('a server not serving before the run starts is ModelServerGoneError, and no harness is started', async () => {
    const fake = new FakePodConnector({
      script: [
        pod.runDir,
        pod.spec,
        pod.poll({ harness: 'dead', vllm: 'dead' }),
        pod.vllmPid('dead'),
        pod.stopHarness,
        pod.vllmLog,
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'ModelServerGoneError', nonRetryable: true });
    expect(f.details?.[0]).toEqual({ runId: RUN_ID, done: null, total: null });
    expect(f.message).toContain('not serving before the run started');
  });

  it('a harness that died while the server is fine is RunInterruptedError (harness-died), looked at twice first', async () => {
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        pod.poll({ progress: progress('running', 3, 6), harness: 'dead', vllm: 'alive' }, 2),
        ...serverUp(),
        pod.harnessLog,
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'RunInterruptedError', nonRetryable: true });
    expect(f.details?.[0]).toEqual({ runId: RUN_ID, done: 3, total: 6, cause: 'harness-died' });
    expect(f.message).toContain('the process is gone without a final state');
    expect(f.message).toContain('INFO sample 3 answered');
  });

  it('a harness that died while /health fails is the server gone, not an interruption', async () => {
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        pod.poll({ progress: progress('running', 3, 6), harness: 'dead', vllm: 'alive' }, 2),
        pod.vllmPid('alive'),
        pod.health('000'),
        pod.stopHarness,
        pod.vllmLog,
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'ModelServerGoneError', nonRetryable: true });
    expect(f.message).toContain('not answering /health');
  });

  it.each([
    { error: 'MeasurementError: CodeCarbon recorded no energy for the run', cause: 'measurement-invalid' },
    { error: 'RuntimeError: tokenizer crashed', cause: 'harness-failed' },
  ])('a run that failed with "$error" is RunInterruptedError ($cause)', async ({ error, cause }) => {
    const failedProgress = progress('failed', 6, 6, { stage: 'finishing', error });
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        pod.poll({ progress: failedProgress, harness: 'dead', vllm: 'alive' }, 2),
        ...serverUp(),
        pod.harnessLog,
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'RunInterruptedError', nonRetryable: true });
    expect(f.details?.[0]).toEqual({ runId: RUN_ID, done: 6, total: 6, cause });
    expect(f.message).toContain(error);
  });

  it.each([
    { error: 'invalid spec: sampling.temperature must be >= 0', type: 'HarnessContractError' },
    { error: 'invalid input: the dataset has no `label` field', type: 'HarnessInputError' },
  ])('a run refused with "$error" is $type, for good', async ({ error, type }) => {
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        pod.poll(
          { progress: progress('failed', 0, 0, { stage: 'starting', error }), harness: 'dead', vllm: 'alive' },
          2,
        ),
        ...serverUp(),
      ],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type, nonRetryable: true });
    expect(f.message).toBe(`harness run ${RUN_ID}: ${error}`);
  });

  it.each([
    { name: 'an unknown state', text: JSON.stringify({ state: 'paused', done: 1, total: 4 }) },
    { name: 'a negative count', text: JSON.stringify({ state: 'running', done: -1, total: 4 }) },
    { name: 'no JSON at all', text: 'Traceback (most recent call last):' },
  ])('progress.json with $name breaks the contract: HarnessContractError, nothing started', async ({ text }) => {
    const fake = new FakePodConnector({
      script: [pod.runDir, pod.spec, pod.poll({ progress: text, harness: 'alive', vllm: 'alive' })],
    });
    const f = await failed(fake);
    expect(f).toMatchObject({ type: 'HarnessContractError', nonRetryable: true });
    expect(f.message).toContain('progress.json does not match the harness contract');
  });

  it('a run found ended unfinished is reported, not restarted in place; with resume it is started again', async () => {
    const ended = progress('failed', 2, 6, { error: 'SIGTERM: stopped' });
    const reported = new FakePodConnector({
      script: [
        pod.runDir,
        pod.spec,
        pod.poll({ progress: ended, harness: 'dead', vllm: 'alive' }),
        ...serverUp(),
        pod.harnessLog,
      ],
    });
    const f = await failed(reported);
    expect(f).toMatchObject({ type: 'RunInterruptedError', nonRetryable: true });
    expect(f.details?.[0]).toEqual({ runId: RUN_ID, done: 2, total: 6, cause: 'harness-failed' });

    const resumed = new FakePodConnector({
      script: [
        pod.runDir,
        pod.spec,
        pod.poll({ progress: ended, harness: 'dead', vllm: 'alive' }),
        ...serverUp(),
        pod.start('started'),
        pod.poll({ progress: progress('done', 6, 6), harness: 'dead', vllm: 'alive' }),
      ],
    });
    expect(await completed(resumed, input({ resume: true }))).toMatchObject({ done: 6, total: 6, reattached: false });
  });

  it('an SSH drop mid-run costs a reconnect: the poll runs again on a new connection', async () => {
    const fake = new FakePodConnector({
      script: [
        ...freshStart(),
        cmd(`cat '${DIR}/progress.json'`, { error: new SshError('connection lost during a command', 'pod', 'lost') }),
        pod.poll({ progress: progress('done', 4, 4), harness: 'dead', vllm: 'alive' }),
      ],
    });
    expect(await completed(fake)).toMatchObject({ done: 4, total: 4, sshReconnects: 1 });
    expect(fake.connections).toBe(2);
  });
});
