// The researcher's entry point: start a phase, follow it, decide at gates, manage the sandbox.
// Over 350 lines while it dispatches every command by hand; the move onto a CLI library (one file per command) is the
// next step of the CLI work and splits it.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { z } from 'zod';
import {
  AnalysisClient,
  AnalysisInputError,
  ReportOutputSchema,
  type GateDecision,
  type GateRecord,
} from '../activities/analysis/index.js';
import { ConfigError, loadConfig, loadDotEnv } from '../config.js';
import { temporalTarget } from '../shared/temporal-target.js';
import { workflowIds } from '../shared/constants.js';
import { studyAttributes } from '../shared/search-attributes.js';
import { checkStudyFiles, loadStudyFile, StudyInvalidError } from '../study/load.js';
import {
  ensureSandbox,
  runningSandbox,
  sandboxPaths,
  sandboxWorkerEnv,
  stopSandbox,
  type DaemonInfo,
} from '../../sandbox/services.js';
import { planPhase } from '../plan/plan-phase.js';
import { confirmStart, planDeps, printPlan, saveMetadata } from './plan.js';
import { sandboxStudy } from '../../sandbox/sandbox-study.js';
import {
  checkSandboxMatch,
  EXIT,
  parseGateArgs,
  parseImportArgs,
  parseListArgs,
  parsePlanArgs,
  parseReaperArgs,
  parseSandboxArgs,
  parseStartArgs,
  parseStudyArgs,
  UsageError,
} from './args.js';
import { installReaperSchedule, reaperCommand } from './reaper.js';
import { fetchResultsCommand, parseFetchResultsArgs } from './fetch-results.js';
import { followStudy } from './follow.js';
import { formatStudyList, listStudies } from './list.js';
import { pullKeptRecords, withStudyResults } from './shared-results.js';
import { formatGateStatus, formatPacket } from './packet-view.js';
import { decideGateUpdate, gateStatusQuery, raiseBudgetSignal, studyProgressQuery } from '../workflows/messages.js';

const ROOT = process.cwd();
const USAGE = `Usage:
  npm run plan -- <phase> [--study studies/rq1.yaml] [--sandbox] [--json] [--verbose] [--offline] [--save-metadata]
  npm run start-workflow -- <phase> [--study studies/rq1.yaml] [--sandbox] [--detach] [--yes] [--dry-run [--json]]
                          [--verbose] [--offline]
  npm run gate -- status [--study rq1] [--sandbox] [--json]
  npm run gate -- <approve|skip|stop> [--study rq1] [--sandbox] [--by NAME] [--reason TEXT]
  npm run gate -- budget [--phase-usd N] [--study-usd N] [--study rq1] [--sandbox] [--by NAME]
  npm run status -- [--study rq1] [--sandbox]
  npm run list -- [--all] [--limit 50] [--json] [--sandbox]
  npm run report -- [--study rq1] [--sandbox]
  npm run import -- <folder or files...> --study rq1 --phase <phase> --model <repo id> --prompt <name>
                    [--id-column C | --line-column C] [--label-column C] [--prediction-column C]
  npm run reaper -- [--dry-run] [--grace-minutes 15] [--sandbox] [--install-schedule [--every-minutes 10]]
  npm run fetch-results -- --pod <pod id> [--sandbox] | --list
  npm run sandbox -- <up|down>
Every command checks its arguments before it contacts anything. start-workflow prints the phase's plan first, stops
when one of its checks fails, and asks before a real start (--yes: do not ask; with no terminal it refuses).
Exit codes: 0 done, 1 the study failed or a plan check failed (or an unexpected error), 2 a bad invocation,
configuration or study file, or no such study.`;

/** In the sandbox the reaper runs every few minutes with a short grace period. */
const SANDBOX_REAPER = { everyMinutes: 5, input: { graceMs: 2 * 60_000, dryRun: false } };

/** `studies/rq1.yaml` + --sandbox -> `studies/rq1.sandbox.yaml` when that overlay exists. */
function studyFile(path: string, sandbox: boolean): string {
  if (!sandbox || path.endsWith('.sandbox.yaml')) return path;
  const overlay = path.replace(/\.ya?ml$/, '.sandbox.yaml');
  if (!existsSync(resolve(ROOT, overlay))) throw new UsageError(`--sandbox needs the overlay ${overlay}`);
  return overlay;
}

/** The sandbox overlay names its study `<name>-sandbox`, so `--study rq1 --sandbox` means `rq1-sandbox`. */
function studyNameFor(study: string, sandbox: boolean): string {
  return sandbox && !study.endsWith('-sandbox') ? `${study}-sandbox` : study;
}

/** The `--study` value that names a study again in a later command (the sandbox suffix is added back by --sandbox). */
function studyArg(name: string): string {
  return name.replace(/-sandbox$/, '');
}

/** The client, the Web UI and the task queue, all from the same configuration the worker reads (TASK_QUEUE too). */
async function connect(sandbox: boolean): Promise<{ client: Client; uiUrl: string; taskQueue: string }> {
  const config = loadConfig({ ...process.env, ...(sandbox ? { SANDBOX: 'true' } : {}) }, ROOT, {
    requireRunPodKey: false,
  });
  const target = temporalTarget(config.TEMPORAL_ENV, { profiles: !sandbox });
  const connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: '10s' }).catch(
    (err: unknown) => {
      throw new UsageError(
        `cannot reach Temporal at ${target.address} (settings from ${target.source}: ${(err as Error).message}); ` +
          'start it (npm run temporal:up), or set TEMPORAL_ADDRESS or TEMPORAL_PROFILE',
      );
    },
  );
  return {
    client: new Client({ connection, namespace: target.namespace }),
    uiUrl: `${config.TEMPORAL_UI_URL.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(target.namespace)}`,
    taskQueue: config.TASK_QUEUE,
  };
}

function gateHelp(studyName: string, sandbox: boolean, next: string): string {
  const flag = sandbox ? ' --sandbox' : '';
  return [
    `Phase gate: the study waits for a decision before ${next}.`,
    `  packet:  npm run gate -- status --study ${studyName}${flag}`,
    `  approve: npm run gate -- approve --study ${studyName}${flag} --by <your name> --reason "<why>"`,
    `  skip:    npm run gate -- skip --study ${studyName}${flag} --by <your name> --reason "<why>"`,
    `  stop:    npm run gate -- stop --study ${studyName}${flag} --by <your name> --reason "<why>"`,
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

/**
 * The configuration a plan is made with: the sandbox's Hub and emulator when it runs (figures from the metadata file
 * when it does not), else the real ones; planning needs no RunPod key.
 */
function planConfig(sandbox: boolean, info: DaemonInfo | null) {
  if (sandbox && info) return loadConfig({ ...process.env, ...sandboxWorkerEnv(sandboxPaths(ROOT), info) }, ROOT);
  return loadConfig({ ...process.env, ...(sandbox ? { SANDBOX: 'true' } : {}) }, ROOT, { requireRunPodKey: false });
}

/** Loads a study for a phase with every check that needs no network: the file, the phase, sandbox or not, paths. */
function studyForPhase(values: { studyPath: string; sandbox: boolean; phaseId: string }) {
  const file = studyFile(values.studyPath, values.sandbox);
  const study = loadStudyFile(file);
  if (!study.phases.some((p) => p.id === values.phaseId)) {
    throw new UsageError(`${file} has no phase ${values.phaseId} (it has ${study.phases.map((p) => p.id).join(', ')})`);
  }
  checkSandboxMatch({ file, simulated: study.simulated, sandbox: values.sandbox });
  checkStudyFiles(study, ROOT, file);
  return { file, study };
}

/** `plan`: what a phase would run, where, for how long and at what cost, and every check; starts nothing. */
async function plan(args: string[]): Promise<number> {
  const values = parsePlanArgs(args);
  let { study } = studyForPhase(values);
  // The sandbox is used when it runs; the plan never starts it.
  const running = values.sandbox ? runningSandbox(ROOT) : null;
  if (running) study = sandboxStudy(study, running.info);
  const config = planConfig(values.sandbox, running?.info ?? null);
  const offline = values.offline || (values.sandbox && !running);
  const deps = planDeps(config, { offline });
  if (values.saveMetadata) {
    const path = study.planning.metadataPath;
    if (!path) throw new UsageError(`${study.study} has no planning.metadataPath to save the figures to`);
    console.error(await saveMetadata({ deps, study, phaseId: values.phaseId, path }));
  }
  if (values.sandbox && !running)
    console.error('sandbox not running: figures from the metadata file (npm run sandbox -- up)');
  const p = await withStudyResults(config, { study: study.study, readOnly: true }, () =>
    planPhase(deps, { study, phaseId: values.phaseId }),
  );
  printPlan(p, values);
  return p.ok ? EXIT.ok : EXIT.failed;
}

async function start(args: string[]): Promise<number> {
  const values = parseStartArgs(args);
  const { phaseId } = values;
  const loaded = studyForPhase(values);
  let { study } = loaded;
  // A real run needs the RunPod key: say so before anything else (a dry run needs none).
  if (!values.sandbox && !values.dryRun) loadConfig(process.env, ROOT);
  let info: DaemonInfo | null = null;
  if (values.sandbox) {
    // A dry run uses the sandbox when it runs and starts nothing; a real start brings it up.
    info = values.dryRun
      ? (runningSandbox(ROOT)?.info ?? null)
      : (await ensureSandbox({ rootDir: ROOT, log: (l) => console.log(`sandbox: ${l}`) })).info;
    // The sandbox's team server (phase 1's host: its port and host key) is known once the sandbox daemon runs.
    if (info) study = sandboxStudy(study, info);
  }
  // The plan before paying: printed, its failed checks stop the start, and a real start is confirmed.
  const config = planConfig(values.sandbox, info);
  const p = await withStudyResults(config, { study: study.study, readOnly: true }, () =>
    planPhase(planDeps(config, { offline: values.offline || (values.sandbox && !info) }), { study, phaseId }),
  );
  printPlan(p, values);
  if (!p.ok) {
    console.error(
      `not started: fix the failed checks above in ${loaded.file} (npm run plan -- ${phaseId} shows them again)`,
    );
    return EXIT.failed;
  }
  if (values.dryRun) return EXIT.ok;
  if (!values.sandbox && !values.yes) {
    const answer = await confirmStart(`Start ${study.study} at ${phaseId} on ${p.target.where}?`);
    if (answer === 'no-terminal')
      throw new UsageError('no terminal to confirm the plan on: pass --yes to start without asking');
    if (answer === 'no') {
      console.log('not started');
      return EXIT.ok;
    }
  }
  const { client, uiUrl, taskQueue } = await connect(values.sandbox);
  if (values.sandbox) await installReaperSchedule(client, { taskQueue, ...SANDBOX_REAPER });
  const workflowId = workflowIds.study(study.study);
  let handle;
  try {
    handle = await client.workflow.start('studyWorkflow', {
      taskQueue,
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
  console.log(`Web UI: ${uiUrl}/workflows/${encodeURIComponent(workflowId)}`);
  if (values.detach) return 0;

  console.log('following progress (Ctrl-C stops following; the workflow keeps running)');
  const outcome = await followStudy({ client, handle });
  const sandboxFlag = values.sandbox ? ' --sandbox' : '';
  switch (outcome) {
    case 'at-gate': {
      const p = await handle.query(studyProgressQuery);
      console.log(`${p.completedPhases.join(', ')} finished; results under results/${study.study}/`);
      const g = await handle.query(gateStatusQuery);
      if (g.packet) console.log(['', ...formatPacket(g.packet)].join('\n'));
      if (g.packetPaths)
        console.log(`\nPacket: results/${g.packetPaths.md}\nReport: results/${g.packetPaths.report}\n`);
      console.log(gateHelp(studyArg(study.study), values.sandbox, p.gate?.nextPhase ?? 'the next phase'));
      return 0;
    }
    case 'done':
      console.log(`study ${study.study} finished; results under results/${study.study}/ (report.md, report.html)`);
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
  // Every argument is checked before connecting: a bad call never reaches Temporal.
  const parsed = parseGateArgs(args, process.env);
  const studyName = studyNameFor(parsed.study, parsed.sandbox);
  const { client } = await connect(parsed.sandbox);
  const handle = client.workflow.getHandle(workflowIds.study(studyName));
  if (parsed.action === 'status') {
    const g = await handle.query(gateStatusQuery);
    console.log(parsed.json ? JSON.stringify(g, null, 2) : formatGateStatus(g).join('\n'));
    return 0;
  }
  const p = await handle.query(studyProgressQuery);
  if (parsed.action === 'budget') {
    if (!p.phaseWorkflowId || p.phaseState !== 'running')
      throw new UsageError(`study ${studyName} has no running phase`);
    await client.workflow.getHandle(p.phaseWorkflowId).signal(raiseBudgetSignal, parsed.raise);
    console.log(`raised the budget of ${p.phase ?? 'the phase'}: ${JSON.stringify(parsed.raise)}`);
    return 0;
  }
  const g = await handle.query(gateStatusQuery);
  if (!g.open || !g.nextPhase) {
    throw new UsageError(
      `study ${studyName} is not waiting at a gate (it is ${p.phaseState}${p.phase ? ` in ${p.phase}` : ''})`,
    );
  }
  const request: GateDecision = {
    gate: g.nextPhase,
    decision: parsed.action,
    by: parsed.by,
    ...(parsed.reason ? { reason: parsed.reason } : {}),
    // The packet this person is deciding on: a packet regenerated meanwhile makes the Update refuse.
    ...(g.packetSha256 ? { packetSha256: g.packetSha256 } : {}),
  };
  let record: GateRecord;
  try {
    record = await handle.executeUpdate(decideGateUpdate, { args: [request] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new UsageError(`the gate refused the decision: ${err.cause?.message ?? err.message}`);
    }
    throw err;
  }
  const outcome = {
    approve: `${record.gate} starts now`,
    skip: `${record.gate} is skipped`,
    stop: `the study stops before ${record.gate}`,
  }[record.decision];
  console.log(
    `${record.decision} recorded for the ${record.gate} gate by ${record.by} at ${record.at}: ${outcome}` +
      `${record.packetSha256 ? ` (packet ${record.packetSha256.slice(0, 12)})` : ''}`,
  );
  console.log(`recorded in results/${studyName}/gate-decisions.json and the report`);
  return 0;
}

/** `report`: regenerate results/<study>/report.{md,html} from the results folder alone (no Temporal, no network). */
async function report(args: string[]): Promise<number> {
  const values = parseStudyArgs('report', args);
  const studyName = studyNameFor(values.study, values.sandbox);
  const config = loadConfig({ ...process.env, ...(values.sandbox ? { SANDBOX: 'true' } : {}) }, ROOT, {
    requireRunPodKey: false,
  });
  const resultsDir = resolve(ROOT, config.RESULTS_DIR);
  const out = await withStudyResults(config, { study: studyName }, () => {
    if (!existsSync(resolve(resultsDir, studyName)))
      throw new UsageError(`no results for study ${studyName} under ${resultsDir}`);
    return analysisClient(config.ANALYSIS_PYTHON).run({
      command: 'report',
      input: { resultsDir, study: studyName },
      schema: ReportOutputSchema,
    });
  });
  console.log(
    `report: ${out.reportMd}\n        ${out.reportHtml}\nfigures: ${out.figures.length} in ${resolve(resultsDir, studyName, 'figures')}`,
  );
  return 0;
}

/** `import`: bring runs made elsewhere into the results folder (the study file gives the dataset). */
async function importRuns(args: string[]): Promise<number> {
  const { values, positionals } = parseImportArgs(args);
  const file = values['study-file'] ?? `studies/${values.study}.yaml`;
  if (!existsSync(resolve(ROOT, file))) throw new UsageError(`no study file ${file}; pass --study-file`);
  const study = loadStudyFile(file);
  if (!study.phases.some((p) => p.id === values.phase))
    throw new UsageError(`${file} has no phase ${values.phase} (it has ${study.phases.map((p) => p.id).join(', ')})`);
  const config = loadConfig(process.env, ROOT, { requireRunPodKey: false });
  const argv = [
    ...positionals.map((p) => resolve(p)),
    '--results-dir',
    resolve(ROOT, config.RESULTS_DIR),
    '--study',
    study.study,
    '--phase',
    values.phase,
    '--dataset',
    resolve(ROOT, study.datasetPath),
  ];
  for (const key of ['model', 'prompt', 'id-column', 'line-column', 'label-column', 'prediction-column'] as const) {
    const v = values[key];
    if (v !== undefined) argv.push(`--${key}`, v);
  }
  const out = await withStudyResults(config, { study: study.study }, () =>
    analysisClient(config.ANALYSIS_PYTHON).run({
      command: 'import',
      argv,
      schema: z.looseObject({ runDir: z.string() }),
    }),
  );
  console.log(JSON.stringify(out, null, 2));
  return 0;
}

function analysisClient(python: string): AnalysisClient {
  return new AnalysisClient({ python: resolve(ROOT, python), projectRoot: ROOT });
}

async function status(args: string[]): Promise<number> {
  const values = parseStudyArgs('status', args);
  const studyName = studyNameFor(values.study, values.sandbox);
  const { client } = await connect(values.sandbox);
  const handle = client.workflow.getHandle(workflowIds.study(studyName));
  const outcome = await followStudy({ client, handle });
  if (outcome === 'waiting-for-budget') console.log(budgetHelp(studyName.replace(/-sandbox$/, ''), values.sandbox));
  if (outcome === 'at-gate') {
    const p = await handle.query(studyProgressQuery);
    console.log(gateHelp(studyName.replace(/-sandbox$/, ''), values.sandbox, p.gate?.nextPhase ?? 'the next phase'));
  }
  return outcome === 'failed' ? 1 : 0;
}

async function sandbox(args: string[]): Promise<number> {
  const log = (l: string) => console.log(`sandbox: ${l}`);
  const action = parseSandboxArgs(args);
  if (action === 'up') {
    const s = await ensureSandbox({ rootDir: ROOT, log });
    const { client, taskQueue } = await connect(true);
    await installReaperSchedule(client, { taskQueue, ...SANDBOX_REAPER });
    console.log(
      `Temporal ${s.temporalAddress} (UI http://localhost:8233), RunPod emulator ${s.info.runpodUrl}, HF ${s.info.hfUrl}`,
    );
    return 0;
  }
  await stopSandbox({ rootDir: ROOT, log });
  return 0;
}

async function reaper(argv: string[]): Promise<number> {
  const args = parseReaperArgs(argv);
  let env = process.env;
  if (args.sandbox) {
    const s = await ensureSandbox({ rootDir: ROOT });
    env = { ...process.env, ...sandboxWorkerEnv(s.paths, s.info) };
  }
  return reaperCommand({ args, config: loadConfig(env, ROOT) });
}

async function fetchResults(argv: string[]): Promise<number> {
  const args = parseFetchResultsArgs(argv);
  const config = loadConfig({ ...process.env, ...(args.sandbox ? { SANDBOX: 'true' } : {}) }, ROOT, {
    requireRunPodKey: false,
  });
  await pullKeptRecords(config);
  return fetchResultsCommand({
    args,
    resultsDir: resolve(ROOT, config.RESULTS_DIR),
    connect: () => connect(args.sandbox),
  });
}

/** `list`: the running studies (or, with --all, every one), their phase, state and spend. */
async function list(args: string[]): Promise<number> {
  const values = parseListArgs(args);
  const { client } = await connect(values.sandbox);
  const rows = await listStudies({ client, all: values.all, limit: values.limit });
  console.log(values.json ? JSON.stringify(rows, null, 2) : formatStudyList(rows, values));
  return EXIT.ok;
}

const commands: Record<string, (args: string[]) => Promise<number>> = {
  start,
  list,
  plan,
  gate,
  status,
  sandbox,
  reaper,
  report,
  import: importRuns,
  'fetch-results': fetchResults,
};

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  const run = commands[command];
  if (!run) {
    console.error(USAGE);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(USAGE);
    return EXIT.ok;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      console.error(`error: no such study workflow (${err.workflowId}); start one with npm run start-workflow`);
      return EXIT.usage;
    }
    if (
      err instanceof UsageError ||
      err instanceof ConfigError ||
      err instanceof StudyInvalidError ||
      err instanceof AnalysisInputError
    ) {
      console.error(`error: ${err.message}`);
      return EXIT.usage;
    }
    // Anything else is not the caller's mistake: still one line, the stack only on request.
    console.error(`error: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    if (process.env.DEBUG) console.error(err);
    else console.error('(set DEBUG=1 for the stack trace)');
    return EXIT.failed;
  }
}

// Exit explicitly: an open gRPC connection would otherwise keep the process alive.
loadDotEnv(ROOT);
process.exit(await main(process.argv.slice(2)));
