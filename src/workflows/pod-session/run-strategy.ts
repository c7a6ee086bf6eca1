import { ActivityFailure, ApplicationFailure, log } from '@temporalio/workflow';
import { ErrorTypes } from '../../shared/errors.js';
import type { RunInferenceOutput } from '../../activities/harness/index.js';
import type { RunInterruption } from '../../activities/results/index.js';
import type { PodEndpoint } from '../../activities/ssh/index.js';
import type { SimulatedAnswers, StartVllmOutput } from '../../activities/vllm/index.js';
import type { PreparePodOutput } from '../../activities/workspace/index.js';
import type { HarnessSettings, ModelSpec, PromptStrategy, Study, VllmSettings } from '../../study/schema.js';
import { call, podStep } from './options.js';
import type { StageReporter } from './workflow.js';

/** What serving the model on the pod needs (the vLLM start, and every restart after an interruption). */
export interface ServeInput {
  endpoint: PodEndpoint;
  study: Study;
  model: ModelSpec;
  vllm: VllmSettings;
  modelDir: string;
  weightBytes: number;
  tensorParallelSize: number;
  gpuIndices: number[] | null;
  /** The pod's paths of the dataset and prompts (the simulated vLLM's answer profiles point at them). */
  remote: PreparePodOutput['remote'];
}

/** The simulated vLLM's answer profiles for one model, with the pod's paths (sandbox studies only). */
function simulatedAnswersFor(
  study: Study,
  repoId: string,
  remote: { datasetPath: string; promptsDir: string },
): SimulatedAnswers | undefined {
  const byPrompt = study.simulated ? study.simulation?.answerProfiles[repoId] : undefined;
  if (!byPrompt || !study.simulation) return undefined;
  return {
    datasetPath: remote.datasetPath,
    profiles: study.prompts.flatMap((p) => {
      const profile = byPrompt[p.name];
      return profile ? [{ templatePath: `${remote.promptsDir}/${p.name}.txt`, ...profile }] : [];
    }),
    sharedLatent: study.simulation.sharedLatent,
  };
}

/** An ensure step: a healthy server is reused, a dead one is started again. `why` names it in the Web UI. */
export function ensureModelServer(serve: ServeInput, why: 'start' | 'restart' | 'check'): Promise<StartVllmOutput> {
  const { model, vllm, gpuIndices } = serve;
  const simulatedAnswers = simulatedAnswersFor(serve.study, model.repoId, serve.remote);
  return call(
    'startVllm',
    podStep(vllm.startupTimeoutMs + 300_000, 4),
    `${why} vLLM ${vllm.version} for ${model.repoId}`,
    {
      endpoint: serve.endpoint,
      modelDir: serve.modelDir,
      servedModelName: model.repoId,
      vllm,
      tensorParallelSize: serve.tensorParallelSize,
      weightBytes: serve.weightBytes,
      ...(model.reasoningParser ? { reasoningParser: model.reasoningParser } : {}),
      ...(gpuIndices ? { gpuIndices } : {}),
      ...(simulatedAnswers ? { simulatedAnswers } : {}),
    },
  );
}

/**
 * A runInference failure the workflow resolves by the study's interruption policy: the model server died, or the
 * harness ended unfinished (died, failed, energy record missing). Its cause, message and where the run stood; else
 * null (other failures end the session).
 */
function runInterruption(
  err: unknown,
): { cause: RunInterruption['cause']; message: string; done: number | null; total: number | null } | null {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure)) return null;
  const type = err.cause.type;
  if (type !== ErrorTypes.ModelServerGone && type !== ErrorTypes.RunInterrupted) return null;
  const at = err.cause.details?.[0] as
    { done?: number | null; total?: number | null; cause?: RunInterruption['cause'] } | undefined;
  return {
    cause: type === ErrorTypes.ModelServerGone ? 'server-gone' : (at?.cause ?? 'harness-failed'),
    message: err.cause.message,
    done: at?.done ?? null,
    total: at?.total ?? null,
  };
}

export interface RunStrategyInput {
  prompt: PromptStrategy;
  /** `<start stamp>-<run token>`: the strategy's run id is `<runBase>-<prompt>` (then `-r<n>` after a restart). */
  runBase: string;
  harness: HarnessSettings;
  serve: ServeInput;
  /** The server as last started; restarted here when it dies. */
  server: StartVllmOutput;
  stage: StageReporter;
}

export interface RunStrategyOutput {
  runId: string;
  inference: RunInferenceOutput;
  /** Each interruption and what the policy did about it (the manifest's `interruptions`). */
  interruptions: RunInterruption[];
  /** The server the run finished on (a new one after a restart); later strategies use it. */
  server: StartVllmOutput;
}

/**
 * Runs one prompt strategy to the end. A dead model server or an unfinished harness is resolved by the study's
 * interruption policy, at most `maxInterruptions` times: the server is ensured again, then `restart` reruns the
 * strategy under a new run id (measured from scratch) and `resume` lets the same run go on. Other failures end the
 * session.
 */
export async function runStrategy(input: RunStrategyInput): Promise<RunStrategyOutput> {
  const { prompt, runBase, harness, serve, stage } = input;
  const { study, model, endpoint, remote, gpuIndices } = serve;
  let server = input.server;
  /** Runs the strategy under `runId` (the activity re-attaches to a harness already running it). */
  const runInference = (runId: string, resume: boolean) =>
    call('runInference', podStep(48 * 3_600_000, 5), `metered inference: ${model.repoId}, ${prompt.name} (${runId})`, {
      endpoint,
      spec: {
        schemaVersion: 1,
        runId,
        baseUrl: server.baseUrl,
        servedModelName: model.repoId,
        datasetPath: remote.datasetPath,
        promptTemplatePath: `${remote.promptsDir}/${prompt.name}.txt`,
        fewShotPath: prompt.fewShotExamplesPath ? `${remote.promptsDir}/${prompt.name}.examples.jsonl` : null,
        sampling: model.sampling,
        concurrency: harness.concurrency,
        thinking: model.thinking,
        codecarbon: study.codecarbon,
        baselineSeconds: harness.baselineSeconds,
        requestTimeoutS: harness.requestTimeoutS,
        limit: harness.limit,
        gpuIndices,
      },
      ...(resume ? { resume } : {}),
    });

  const interruptions: RunInterruption[] = [];
  let runId = `${runBase}-${prompt.name}`;
  let inference: RunInferenceOutput | null = null;
  let resume = false;
  while (!inference) {
    stage(
      'inference',
      interruptions.length ? `${prompt.name} (after ${interruptions.length} interruption(s))` : prompt.name,
    );
    try {
      inference = await runInference(runId, resume);
    } catch (err) {
      const cut = runInterruption(err);
      if (!cut || interruptions.length >= harness.maxInterruptions) throw err;
      interruptions.push({
        at: new Date().toISOString(),
        runId,
        cause: cut.cause,
        reason: cut.message,
        policy: harness.interruptionPolicy,
        samplesDone: cut.done,
        samplesTotal: cut.total,
      });
      log.warn('run interrupted', { runId, cause: cut.cause, policy: harness.interruptionPolicy });
      // An ensure step: a dead server is started again, a healthy one reused.
      stage('starting-vllm', `after ${cut.cause} under ${runId}`);
      server = await ensureModelServer(serve, cut.cause === 'server-gone' ? 'restart' : 'check');
      // `restart`: a fresh run in a new directory, measured from scratch; `resume`: the same run goes on.
      if (harness.interruptionPolicy === 'restart') runId = `${runBase}-${prompt.name}-r${interruptions.length}`;
      else resume = true;
    }
  }
  return { runId, inference, interruptions, server };
}
