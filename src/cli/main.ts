// The researcher's entry point: start a phase, follow it, decide at gates, manage the sandbox.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { ConfigError, loadConfig } from '../config.js';
import { TASK_QUEUE, workflowIds } from '../shared/constants.js';
import { studyAttributes } from '../shared/search-attributes.js';
import type { BudgetRaise, GateDecision, StudyProgress } from '../shared/types.js';
import { checkStudyFiles, loadStudyFile, StudyInvalidError } from '../study/load.js';
import { ensureSandbox, sandboxWorkerEnv, stopSandbox } from '../../sandbox/services.js';
import { installReaperSchedule, reaperCommand } from './reaper.js';
import { followStudy } from './follow.js';

const ROOT = process.cwd();
const USAGE = `Usage:
  npm run start-workflow -- <phase> [--study studies/rq1.yaml] [--sandbox] [--detach]
  npm run gate -- <approve|skip|stop> [--study rq1] [--sandbox] [--by NAME] [--note TEXT]
  npm run gate -- budget [--phase-usd N] [--study-usd N] [--study rq1] [--sandbox] [--by NAME]
  npm run status -- [--study rq1] [--sandbox]
  npm run reaper -- [--dry-run] [--grace-minutes 15] [--sandbox] [--install-schedule [--every-minutes 10]]
  npm run sandbox -- <up|down>`;

/** In the sandbox the reaper runs every few minutes with a short grace period. */
const SANDBOX_REAPER = { everyMinutes: 5, input: { graceMs: 2 * 60_000, dryRun: false } };

class UsageError extends Error {}

/** `studies/rq1.yaml` + --sandbox -> `studies/rq1.sandbox.yaml` when that overlay exists. */
function studyFile(path: string, sandbox: boolean): string {
  if (!sandbox) return path;
  const overlay = path.replace(/\.ya?ml$/, '.sandbox.yaml');
  if (!existsSync(resolve(ROOT, overlay))) throw new UsageError(`--sandbox needs the overlay ${overlay}`);
  return overlay;
}

/** The sandbox overlay names its study `<name>-sandbox`, so `--study rq1 --sandbox` means `rq1-sandbox`. */
function studyNameFor(study: string, sandbox: boolean): string {
  return sandbox && !study.endsWith('-sandbox') ? `${study}-sandbox` : study;
}

async function connect(sandbox: boolean): Promise<{ client: Client; uiUrl: string }> {
  const config = loadConfig({ ...process.env, ...(sandbox ? { SANDBOX: 'true' } : {}) }, ROOT, {
    requireRunPodKey: false,
  });
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS, connectTimeout: '10s' }).catch(
    (err: unknown) => {
      throw new UsageError(
        `cannot reach Temporal at ${config.TEMPORAL_ADDRESS} (${(err as Error).message}); start it (npm run temporal:up) or set TEMPORAL_ADDRESS`,
      );
    },
  );
  return { client: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }), uiUrl: config.TEMPORAL_UI_URL };
}

function gateHelp(studyName: string, sandbox: boolean, next: string): string {
  const flag = sandbox ? ' --sandbox' : '';
  return [
    `Phase gate: the study waits for a decision before ${next}.`,
    `  approve: npm run gate -- approve --study ${studyName}${flag} --by <your name>`,
    `  skip:    npm run gate -- skip --study ${studyName}${flag} --by <your name>`,
    `  stop:    npm run gate -- stop --study ${studyName}${flag} --by <your name>`,
    `  (or send the gateDecision signal from the Web UI: {"decision":"approve","by":"<name>"})`,
  ].join('\n');
}

function budgetHelp(studyName: string, sandbox: boolean): string {
  const flag = sandbox ? ' --sandbox' : '';
  return [
    'The phase waits before reserving another pod: the next session would exceed a budget.',
    `  raise it: npm run gate -- budget --study ${studyName}${flag} --phase-usd <N> [--study-usd <N>] --by <your name>`,
    `  or cancel the study from the Web UI (pods already running are terminated by their sessions).`,
  ].join('\n');
}

async function start(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      study: { type: 'string', default: 'studies/rq1.yaml' },
      sandbox: { type: 'boolean', default: false },
      detach: { type: 'boolean', default: false },
    },
  });
  const phaseId = positionals[0];
  if (!phaseId) throw new UsageError('which phase? e.g. `npm run start-workflow -- phase2a --sandbox`');
  // A real run needs the RunPod key: say so before anything else is checked or started.
  if (!values.sandbox) loadConfig(process.env, ROOT);
  const file = studyFile(values.study, values.sandbox);
  const study = loadStudyFile(file);
  checkStudyFiles(study, ROOT, file);
  if (!study.phases.some((p) => p.id === phaseId)) {
    throw new UsageError(`${file} has no phase ${phaseId} (it has ${study.phases.map((p) => p.id).join(', ')})`);
  }
  if (values.sandbox) await ensureSandbox({ rootDir: ROOT, log: (l) => console.log(`sandbox: ${l}`) });
  const { client, uiUrl } = await connect(values.sandbox);
  if (values.sandbox) await installReaperSchedule(client, { taskQueue: TASK_QUEUE, ...SANDBOX_REAPER });
  const workflowId = workflowIds.study(study.study);
  let handle;
  try {
    handle = await client.workflow.start('studyWorkflow', {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [{ study, startPhase: phaseId }],
      typedSearchAttributes: studyAttributes({ study: study.study }),
      staticSummary: `${study.study} from ${phaseId}${study.simulated ? ' (sandbox)' : ''}`,
    });
    console.log(`started ${workflowId} at ${phaseId}`);
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    handle = client.workflow.getHandle(workflowId);
    console.log(`${workflowId} is already running; following it instead of starting another`);
  }
  console.log(`Web UI: ${uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  if (values.detach) return 0;

  console.log('following progress (Ctrl-C stops following; the workflow keeps running)');
  const outcome = await followStudy({ client, handle });
  const sandboxFlag = values.sandbox ? ' --sandbox' : '';
  switch (outcome) {
    case 'at-gate': {
      const p = await handle.query<StudyProgress>('studyProgress');
      console.log(`${p.completedPhases.join(', ')} finished; results under results/${study.study}/`);
      console.log(gateHelp(study.study, values.sandbox, p.gate?.nextPhase ?? 'the next phase'));
      return 0;
    }
    case 'done':
      console.log(`study ${study.study} finished; results under results/${study.study}/`);
      return 0;
    case 'waiting-for-budget':
      console.log(budgetHelp(study.study, values.sandbox));
      return 0;
    case 'stopped':
      console.log(`study ${study.study} was stopped at a gate`);
      return 0;
    case 'detached':
      console.log(`detached; follow again with: npm run status -- --study ${study.study}${sandboxFlag}`);
      return 0;
    case 'failed':
      console.error(`study ${study.study} did not finish; see the Web UI for the failure`);
      return 1;
  }
}

async function gate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      study: { type: 'string', default: 'rq1' },
      sandbox: { type: 'boolean', default: false },
      by: { type: 'string', default: process.env.USER ?? 'unknown' },
      note: { type: 'string' },
      'phase-usd': { type: 'string' },
      'study-usd': { type: 'string' },
    },
  });
  const decision = positionals[0];
  if (decision !== 'approve' && decision !== 'skip' && decision !== 'stop' && decision !== 'budget') {
    throw new UsageError('the decision must be approve, skip, stop or budget');
  }
  const studyName = studyNameFor(values.study, values.sandbox);
  const { client } = await connect(values.sandbox);
  const handle = client.workflow.getHandle(workflowIds.study(studyName));
  const p = await handle.query<StudyProgress>('studyProgress');
  if (decision === 'budget') {
    const amount = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    const raise: BudgetRaise = { by: values.by };
    const phaseUsd = amount(values['phase-usd']);
    const studyUsd = amount(values['study-usd']);
    if (phaseUsd !== undefined) raise.phaseUsd = phaseUsd;
    if (studyUsd !== undefined) raise.studyUsd = studyUsd;
    if (
      [phaseUsd, studyUsd].every((v) => v === undefined) ||
      [phaseUsd, studyUsd].some((v) => v !== undefined && !(v > 0))
    ) {
      throw new UsageError('budget takes --phase-usd and/or --study-usd with positive amounts');
    }
    if (!p.phaseWorkflowId || p.phaseState !== 'running')
      throw new UsageError(`study ${studyName} has no running phase`);
    await client.workflow.getHandle(p.phaseWorkflowId).signal('raiseBudget', raise);
    console.log(`raised the budget of ${p.phase ?? 'the phase'}: ${JSON.stringify(raise)}`);
    return 0;
  }
  if (p.phaseState !== 'waiting-at-gate') {
    throw new UsageError(
      `study ${studyName} is not waiting at a gate (it is ${p.phaseState}${p.phase ? ` in ${p.phase}` : ''})`,
    );
  }
  const signal: GateDecision = { decision, by: values.by, ...(values.note ? { note: values.note } : {}) };
  await handle.signal('gateDecision', signal);
  console.log(`sent ${decision} for ${p.gate?.nextPhase ?? 'the next phase'} of ${studyName}`);
  return 0;
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { study: { type: 'string', default: 'rq1' }, sandbox: { type: 'boolean', default: false } },
  });
  const studyName = studyNameFor(values.study, values.sandbox);
  const { client } = await connect(values.sandbox);
  const handle = client.workflow.getHandle(workflowIds.study(studyName));
  const outcome = await followStudy({ client, handle });
  if (outcome === 'waiting-for-budget') console.log(budgetHelp(studyName.replace(/-sandbox$/, ''), values.sandbox));
  if (outcome === 'at-gate') {
    const p = await handle.query<StudyProgress>('studyProgress');
    console.log(gateHelp(studyName.replace(/-sandbox$/, ''), values.sandbox, p.gate?.nextPhase ?? 'the next phase'));
  }
  return outcome === 'failed' ? 1 : 0;
}

async function sandbox(args: string[]): Promise<number> {
  const log = (l: string) => console.log(`sandbox: ${l}`);
  if (args[0] === 'up') {
    const s = await ensureSandbox({ rootDir: ROOT, log });
    await installReaperSchedule((await connect(true)).client, { taskQueue: TASK_QUEUE, ...SANDBOX_REAPER });
    console.log(
      `Temporal ${s.temporalAddress} (UI http://localhost:8233), RunPod emulator ${s.info.runpodUrl}, HF ${s.info.hfUrl}`,
    );
    return 0;
  }
  if (args[0] === 'down') {
    await stopSandbox({ rootDir: ROOT, log });
    return 0;
  }
  throw new UsageError('sandbox takes up or down');
}

async function reaper(args: string[]): Promise<number> {
  let env = process.env;
  if (args.includes('--sandbox')) {
    const s = await ensureSandbox({ rootDir: ROOT });
    env = { ...process.env, ...sandboxWorkerEnv(s.paths, s.info) };
  }
  return reaperCommand(args, loadConfig(env, ROOT));
}

const commands: Record<string, (args: string[]) => Promise<number>> = { start, gate, status, sandbox, reaper };

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  const run = commands[command];
  if (!run) {
    console.error(USAGE);
    return 2;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      console.error(`error: no such study workflow (${err.workflowId}); start one with npm run start-workflow`);
      return 2;
    }
    if (err instanceof UsageError || err instanceof ConfigError || err instanceof StudyInvalidError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

// Exit explicitly: an open gRPC connection would otherwise keep the process alive.
process.exit(await main(process.argv.slice(2)));
