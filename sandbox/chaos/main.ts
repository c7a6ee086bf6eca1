// `npm run chaos`: the scenarios of ./scenarios.ts, each several times with different seeds, against the sandbox
// (RunPod emulator with sshd pods, the Hub, the simulated vLLM, the real harness) with its own Temporal dev server and
// a production worker process. Prints per scenario: outcome, leaked and duplicate pods, lost or duplicated samples,
// extra pod cost and extra time against the fault-free run; writes every trial to .sandbox/chaos/<time>.json.
//   npm run chaos                    every scenario, 2 seeds each (the worker kill once per kill point)
//   npm run chaos -- --repeats 3 --only pod-lost,vllm-crash
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { findKeptResults } from '../../src/activities/results/index.js';
import { modelSlug, workflowIds } from '../../src/shared/constants.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import type { PodSessionInput } from '../../src/workflows/types.js';
import { startSandboxServers } from '../daemon.js';
import { inProcessSandboxControl } from '../scenarios.js';
import { freePort, startDevServer, until, workerProcess } from './processes.js';
import { countSamples, maxOverlap, median, mulberry32, outcomeOf } from './measure.js';
import { CHAOS_SCENARIOS, type ChaosContext, type ChaosScenario } from './scenarios.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PHASE = 'phase2a';
const SAMPLES = 8;
const TRIAL_TIMEOUT_MS = 900_000;

interface Trial {
  scenario: string;
  seed: number;
  expected: string;
  outcome: string;
  ok: boolean;
  notes: string[];
  wallS: number;
  pods: number;
  leakedPods: number;
  duplicatePods: number;
  lostSamples: number;
  duplicatedSamples: number;
  costUsd: number;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { repeats: { type: 'string', default: '2' }, only: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    console.log('npm run chaos [-- --repeats N] [--only a,b]\nscenarios:');
    for (const s of CHAOS_SCENARIOS) console.log(`  ${s.name.padEnd(20)} ${s.fault} -> ${s.expect}`);
    return 0;
  }
  const repeats = Number(values.repeats);
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats must be a whole number >= 1`);
  const only = values.only?.split(',') ?? null;
  const unknown = only?.filter((n) => !CHAOS_SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')} (npm run chaos -- --help)`);
  // The fault-free run is the baseline of extra cost and time: always there.
  const chosen = CHAOS_SCENARIOS.filter((s) => !only || s.name === 'fault-free' || only.includes(s.name));

  const dir = mkdtempSync(join(tmpdir(), 'chaos-'));
  const resultsDir = join(dir, 'results');
  const keyPath = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
  const apiKey = `chaos-${randomUUID()}`;
  const taskQueue = `chaos-${randomUUID().slice(0, 8)}`;
  const log = (l: string) => console.log(`chaos: ${l}`);
  log(`working in ${dir} (worker log worker.log, dev server log temporal.log)`);
  const temporal = await startDevServer({ rootDir: ROOT, dir });
  const servers = await startSandboxServers({ dataDir: join(dir, 'runpod'), apiKey });
  const control = inProcessSandboxControl(servers);
  const worker = workerProcess({
    rootDir: ROOT,
    logPath: join(dir, 'worker.log'),
    env: {
      SANDBOX: 'true',
      TEMPORAL_ADDRESS: temporal.address,
      TASK_QUEUE: taskQueue,
      RUNPOD_API_KEY: apiKey,
      RUNPOD_BASE_URL: servers.runpod.url,
      HF_ENDPOINT: servers.hf.url,
      SSH_PRIVATE_KEY_PATH: keyPath,
      RESULTS_DIR: resultsDir,
      PROJECT_ROOT: ROOT,
      POD_POLL_INTERVAL_MS: '500',
    },
  });
  await worker.start();
  const client = new Client({ connection: await Connection.connect({ address: temporal.address }) });
  // The first trial's time must not include the worker's start-up (bundling the workflows): wait for its poller.
  await until(
    'the worker to poll its task queue',
    async () => {
      const q = await client.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: taskQueue },
        taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
      });
      return (q.pollers?.length ?? 0) > 0;
    },
    180_000,
  );
  const base = loadStudyFile(resolve(ROOT, 'studies/rq1.sandbox.yaml'));
  const model = base.phases.find((p) => p.id === PHASE)?.models[0];
  if (!model) throw new Error(`the sandbox study has no ${PHASE} model`);

  const trials: Trial[] = [];
  try {
    for (const scenario of chosen) {
      const n = scenario.name === 'fault-free' ? Math.max(1, repeats) : Math.max(repeats, scenario.minRepeats ?? 0);
      for (let seed = 1; seed <= n; seed++) {
        const trial = await runTrial({ scenario, seed, base, model, client, control, servers, worker, temporal });
        trials.push(trial);
        log(
          `${scenario.name} #${seed}: ${trial.outcome}${trial.ok ? '' : ` (expected ${trial.expected})`} in ` +
            `${trial.wallS.toFixed(0)} s, ${trial.pods} pod(s), leaked ${trial.leakedPods}, duplicate ` +
            `${trial.duplicatePods}, samples lost ${trial.lostSamples} / duplicated ${trial.duplicatedSamples}` +
            `${trial.notes.length ? `; ${trial.notes.join('; ')}` : ''}`,
        );
      }
    }
  } finally {
    await worker.close();
    await servers.runpod.close();
    await servers.hf.close();
    await temporal.close();
  }

  const outDir = resolve(ROOT, '.sandbox/chaos');
  mkdirSync(outDir, { recursive: true });
  const outFile = join(outDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(outFile, `${JSON.stringify({ samplesPerRun: SAMPLES, trials }, null, 2)}\n`);
  printTable(trials);
  log(`every trial: ${outFile}`);
  rmSync(dir, { recursive: true, force: true });
  return trials.every(
    (t) => t.ok && t.leakedPods === 0 && t.duplicatePods === 0 && t.lostSamples === 0 && t.duplicatedSamples === 0,
  )
    ? 0
    : 1;

  async function runTrial(a: {
    scenario: ChaosScenario;
    seed: number;
    base: Study;
    model: PodSessionInput['model'];
    client: Client;
    control: typeof control;
    servers: typeof servers;
    worker: typeof worker;
    temporal: typeof temporal;
  }): Promise<Trial> {
    const short = a.scenario.name.replace(/[^a-z0-9]/g, '').slice(0, 10);
    const cut: Study = {
      ...a.base,
      study: `chaos-${short}-${a.seed}-${randomUUID().slice(0, 6)}`,
      vllm: { ...a.base.vllm, port: await freePort() },
      harness: { ...a.base.harness, concurrency: 2, baselineSeconds: 2, limit: SAMPLES },
    };
    const study = a.scenario.study ? a.scenario.study(cut) : cut;
    const notes: string[] = [];
    const random = mulberry32(a.seed * 7919 + a.scenario.name.length);
    const input: PodSessionInput = { study, phaseId: PHASE, model: a.model };
    const startedMs = Date.now();
    const ctx: ChaosContext = {
      seed: a.seed,
      random,
      study,
      control: a.control,
      runpod: a.servers.runpod,
      worker: a.worker,
      temporal: a.temporal,
      client: a.client,
      taskQueue,
      resultsDir,
      handle: a.client.workflow.getHandle(workflowIds.podSession(study.study, PHASE, modelSlug(a.model.repoId))),
      async waitFor(what, pred) {
        let found: Awaited<ReturnType<ChaosContext['waitFor']>> | undefined;
        await until(
          what,
          async () => {
            const p = await ctx.handle.query(sessionProgressQuery).catch(() => undefined);
            if (p && pred(p)) found = p;
            return found !== undefined;
          },
          TRIAL_TIMEOUT_MS,
        );
        if (!found) throw new Error(`chaos: no progress for ${what}`);
        return found;
      },
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      note: (t) => notes.push(t),
    };
    await a.scenario.before?.(ctx);
    ctx.handle = await a.client.workflow.start('podSessionWorkflow', {
      taskQueue,
      workflowId: ctx.handle.workflowId,
      args: [input],
    });
    const during = a.scenario.during?.(ctx).catch((err: unknown) => notes.push(`fault not applied: ${String(err)}`));
    const outcome = await ctx.handle.result().then(
      () => 'completed',
      (err: unknown) => outcomeOf(err),
    );
    await during;
    const wallS = (Date.now() - startedMs) / 1000;
    await a.scenario.after?.(ctx);
    // The strategies whose samples must be home: all of a completed session, those left on a kept pod (fetched).
    let expectedPrompts: string[] = outcome === 'completed' ? study.prompts.map((p) => p.name) : [];
    if (outcome === 'ResultsNotHomeError') {
      // What a person does next: npm run fetch-results -- --pod <id>
      for (const { record } of findKeptResults(resultsDir).filter((k) => k.record.study === study.study)) {
        expectedPrompts = [...expectedPrompts, ...record.runs.map((r) => r.prompt)];
        await a.client.workflow.execute('fetchKeptResultsWorkflow', {
          taskQueue,
          workflowId: `chaos-fetch-${record.podId}`,
          args: [{ record }],
        });
        notes.push(`fetched kept pod ${record.podId}`);
      }
    }
    await a.control.clearRunPodFaults();
    await a.control.setHfFaults([]);
    const pods = a.servers.runpod.billing().pods.filter((p) => p.name.includes(`--${study.study}--`));
    const samples = countSamples(resultsDir, study, PHASE, a.model.repoId, SAMPLES, expectedPrompts);
    return {
      scenario: a.scenario.name,
      seed: a.seed,
      expected: a.scenario.expect,
      outcome,
      ok: outcome === a.scenario.expect,
      notes,
      wallS,
      pods: pods.length,
      leakedPods: a.servers.runpod.pods().filter((p) => p.name.includes(`--${study.study}--`)).length,
      duplicatePods: Math.max(0, maxOverlap(pods) - 1),
      lostSamples: samples.lost,
      duplicatedSamples: samples.duplicated,
      costUsd: pods.reduce((s, p) => s + p.usd, 0),
    };
  }
}

function printTable(trials: Trial[]): void {
  const baseline = trials.filter((t) => t.scenario === 'fault-free');
  const baseCost = median(baseline.map((t) => t.costUsd));
  const baseWall = median(baseline.map((t) => t.wallS));
  const rows = [...new Set(trials.map((t) => t.scenario))].map((name) => {
    const ts = trials.filter((t) => t.scenario === name);
    const sum = (f: (t: Trial) => number) => ts.reduce((s, t) => s + f(t), 0);
    const extraCost = ts.map((t) => t.costUsd - baseCost);
    const extraS = ts.map((t) => t.wallS - baseWall);
    return [
      name,
      `${ts.filter((t) => t.ok).length}/${ts.length} ${ts[0]?.expected ?? ''}`,
      String(sum((t) => t.leakedPods)),
      String(sum((t) => t.duplicatePods)),
      `${sum((t) => t.lostSamples)} / ${sum((t) => t.duplicatedSamples)}`,
      `${median(extraCost) >= 0 ? '+' : ''}${median(extraCost).toFixed(4)}`,
      `${median(extraS).toFixed(0)} (${Math.min(...extraS).toFixed(0)}..${Math.max(...extraS).toFixed(0)})`,
    ];
  });
  const head = [
    'scenario',
    'outcome as expected',
    'leaked pods',
    'duplicate pods',
    'samples lost / duplicated',
    'extra pod $ (median)',
    'extra s: median (min..max)',
  ];
  console.log(`\n| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log(
    `\nfault-free session: ${baseWall.toFixed(0)} s, $${baseCost.toFixed(4)} (sandbox prices), ${SAMPLES} samples x 2 strategies`,
  );
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
