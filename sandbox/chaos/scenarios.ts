// The chaos run's table: each scenario is a fault at a moment of one pod session (one model, two prompt strategies)
// and the outcome a correct orchestrator ends with. Moments come from the session's own progress query, so a fault
// hits the step it names whatever the machine's speed; the seed picks where inside a step (and, for the worker kill,
// which step).
import type { Client, WorkflowHandle } from '@temporalio/client';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Study } from '../../src/study/schema.js';
import type { PodSessionProgress } from '../../src/workflows/types.js';
import type { RunPodEmulator } from '../runpod-emulator/index.js';
import { scenarioByName, type SandboxControl } from '../scenarios.js';
import type { DevServer, WorkerProcess } from './processes.js';

export interface ChaosContext {
  seed: number;
  /** Uniform in [0, 1), from the seed. */
  random(): number;
  study: Study;
  control: SandboxControl;
  runpod: RunPodEmulator;
  worker: WorkerProcess;
  temporal: DevServer;
  client: Client;
  taskQueue: string;
  resultsDir: string;
  handle: WorkflowHandle;
  /** Polls the session's progress until `pred` holds; returns that progress. */
  waitFor(what: string, pred: (p: PodSessionProgress) => boolean): Promise<PodSessionProgress>;
  sleep(ms: number): Promise<void>;
  /** Notes what was done, for the trial's line (`kill at inference +1.2 s`). */
  note(text: string): void;
}

export interface ChaosScenario {
  name: string;
  /** What is done, in a few words, for the table. */
  fault: string;
  /** `completed`, `terminated`, or the failure type the session must end with. */
  expect: string;
  study?: (s: Study) => Study;
  /** Runs at least this many times (one per seed), whatever `--repeats` says. */
  minRepeats?: number;
  /** Before the session starts (faults armed for the next pod). */
  before?: (ctx: ChaosContext) => Promise<void>;
  /** While it runs. */
  during?: (ctx: ChaosContext) => Promise<void>;
  /** After it ended: what a person would do next (the reaper, fetch-results). */
  after?: (ctx: ChaosContext) => Promise<void>;
}

const named = (name: string) => (ctx: ChaosContext) => scenarioByName(name).apply(ctx.control);

/** Where a worker kill lands, by seed; 'create' is between a create request and its answer. */
const KILL_POINTS = ['create', 'downloading', 'starting-vllm', 'inference'] as const;
const killPoint = (ctx: ChaosContext) => KILL_POINTS[(ctx.seed - 1) % KILL_POINTS.length] ?? 'inference';

function harnessRunning(ctx: ChaosContext, podId: string | null): boolean {
  const pod = ctx.runpod.pods().find((p) => p.id === podId);
  if (!pod) return false;
  const runs = join(pod.workspaceDir, 'runs');
  return existsSync(runs) && readdirSync(runs).some((r) => existsSync(join(runs, r, 'harness.pid')));
}

export const CHAOS_SCENARIOS: ChaosScenario[] = [
  { name: 'fault-free', fault: 'none (the baseline for extra cost and time)', expect: 'completed' },
  {
    name: 'worker-sigkill',
    fault: 'SIGKILL the worker at a step picked by the seed (a create in flight, download, vLLM start, inference)',
    expect: 'completed',
    minRepeats: KILL_POINTS.length,
    async before(ctx) {
      // The create request is held 6 s before RunPod handles it: the kill lands while it is in flight.
      if (killPoint(ctx) === 'create')
        await ctx.control.injectRunPodFault({ type: 'latency', delayMs: 6_000, method: 'POST', pathPrefix: '/pods' });
    },
    async during(ctx) {
      const point = killPoint(ctx);
      await ctx.waitFor(point, (p) => p.stage === (point === 'create' ? 'reserving' : point));
      const afterMs = point === 'create' ? 1_500 : Math.round(ctx.random() * 2_000);
      await ctx.sleep(afterMs);
      ctx.note(`killed at ${point} +${(afterMs / 1000).toFixed(1)} s`);
      await ctx.worker.kill();
      await ctx.worker.start();
    },
  },
  {
    name: 'temporal-restart',
    fault: 'restart the Temporal dev server mid-inference',
    expect: 'completed',
    async during(ctx) {
      await ctx.waitFor('inference', (p) => p.stage === 'inference');
      await ctx.sleep(ctx.random() * 2_000);
      await ctx.temporal.restart();
    },
  },
  {
    name: 'pod-lost',
    fault: 'the pod vanishes mid-inference of the second strategy',
    expect: 'completed',
    async during(ctx) {
      const second = ctx.study.prompts[1]?.name;
      const p = await ctx.waitFor('the second strategy running', (x) => x.runsDone === 1 && x.stage === 'inference');
      if (p.prompt !== second) ctx.note(`(prompt ${p.prompt})`);
      await ctx.sleep(ctx.random() * 2_000);
      if (p.podId) await ctx.control.injectRunPodFault({ type: 'pod', effect: 'vanish', podId: p.podId, afterMs: 0 });
    },
  },
  {
    name: 'transfer-fails',
    fault: "the pod's SFTP breaks for good while the harness runs; then fetch-results",
    expect: 'ResultsNotHomeError',
    study: (s) => ({ ...s, transfer: { giveUpAfterMs: 15_000 } }),
    async during(ctx) {
      const p = await ctx.waitFor(
        'the harness running',
        (x) => x.stage === 'inference' && harnessRunning(ctx, x.podId),
      );
      if (p.podId) await ctx.control.injectRunPodFault({ type: 'pod', effect: 'sftp-broken', podId: p.podId });
    },
    // fetch-results: the runner brings the kept pod's results home (see main.ts).
  },
  {
    name: 'api-storm',
    fault: 'RunPod 503s, 429s, then a create answered 502',
    expect: 'completed',
    before: named('api-storm'),
  },
  {
    name: 'list-lag',
    fault: 'a create answered 502 whose pod the list shows only 20 s later',
    expect: 'completed',
    async before(ctx) {
      await ctx.control.injectRunPodFault({ type: 'create-5xx', status: 502, count: 1 });
      await ctx.control.injectRunPodFault({
        type: 'pod',
        effect: 'list-lag',
        namePrefix: 'gpustudy--',
        count: 1,
        afterMs: 20_000,
      });
    },
  },
  {
    name: 'xet-stall',
    fault: 'the first shard stalls after 512 KiB',
    expect: 'completed',
    study: (s) => ({ ...s, download: { ...s.download, stallTimeoutMs: 8_000 } }),
    before: named('xet-stall'),
  },
  {
    name: 'corrupt-shard',
    fault: 'the last shard arrives truncated',
    expect: 'completed',
    before: named('corrupt-shard'),
  },
  {
    name: 'vllm-oom',
    fault: 'vLLM runs out of CUDA memory at start',
    expect: 'ModelDoesNotFitError',
    before: named('vllm-oom'),
  },
  {
    name: 'vllm-crash',
    fault: 'vLLM dies mid-run (once per pod)',
    expect: 'completed',
    before: named('vllm-crash-mid-run'),
  },
  {
    name: 'ssh-drop',
    fault: 'SSH connections cut every 5 s for 2 min',
    expect: 'completed',
    before: named('ssh-drop'),
  },
  {
    name: 'workflow-terminated',
    fault: 'the session workflow is terminated mid-inference; then the reaper',
    expect: 'terminated',
    async during(ctx) {
      await ctx.waitFor('inference', (p) => p.stage === 'inference');
      await ctx.sleep(ctx.random() * 2_000);
      await ctx.handle.terminate('chaos: terminated mid-inference');
    },
    async after(ctx) {
      await ctx.client.workflow.execute('reaperWorkflow', {
        taskQueue: ctx.taskQueue,
        workflowId: `chaos-reaper-${ctx.study.study}`,
        args: [{ graceMs: 0, dryRun: false }],
      });
    },
  },
];
