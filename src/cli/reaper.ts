import { Client, Connection, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import {
  formatDecision,
  reapOrphanPods,
  temporalWorkflowStatus,
  type ReapOrphanPodsInput,
} from '../activities/reaper/index.js';
import { RunPodClient } from '../activities/runpod/index.js';
import type { Env } from '../config.js';
import { temporalTarget } from '../shared/temporal-target.js';
import { REAPER_SCHEDULE_ID } from '../shared/constants.js';
import type { ReaperArgs } from './args.js';

/** Creates (or updates) the Schedule that runs reaperWorkflow every `everyMinutes`. */
export async function installReaperSchedule(
  client: Client,
  opts: { taskQueue: string; everyMinutes: number; input: ReapOrphanPodsInput },
): Promise<'created' | 'updated'> {
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'reaperWorkflow',
    taskQueue: opts.taskQueue,
    args: [opts.input],
  };
  const spec = { intervals: [{ every: `${opts.everyMinutes}m` }] };
  try {
    await client.schedule.create({
      scheduleId: REAPER_SCHEDULE_ID,
      spec,
      action,
      // A slow reaper run must not pile up behind itself.
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(REAPER_SCHEDULE_ID).update((prev) => ({ ...prev, spec, action }));
    return 'updated';
  }
}

/** `npm run reaper -- [--dry-run] [--grace-minutes N] [--install-schedule [--every-minutes N]]`, arguments checked. */
export async function reaperCommand({ args, config }: { args: ReaperArgs; config: Env }): Promise<number> {
  const { graceMinutes, everyMinutes } = args;
  const input: ReapOrphanPodsInput = { graceMs: graceMinutes * 60_000, dryRun: args.dryRun };
  const target = temporalTarget(config.TEMPORAL_ENV, { profiles: !config.SANDBOX });
  const client = new Client({
    connection: await Connection.connect(target.connectionOptions),
    namespace: target.namespace,
  });
  if (args.installSchedule) {
    const how = await installReaperSchedule(client, { taskQueue: config.TASK_QUEUE, everyMinutes, input });
    console.log(
      `${how} schedule ${REAPER_SCHEDULE_ID}: reaperWorkflow every ${everyMinutes} min (grace ${graceMinutes} min${input.dryRun ? ', dry run' : ''})`,
    );
    return 0;
  }
  const runpod = new RunPodClient({
    apiKey: config.RUNPOD_API_KEY ?? '',
    baseUrl: config.RUNPOD_BASE_URL,
    timeoutMs: config.RUNPOD_TIMEOUT_MS,
  });
  const out = await reapOrphanPods({ runpod, workflowStatus: temporalWorkflowStatus(client) }, input);
  if (out.decisions.length === 0) console.log('no project pods on the account');
  for (const d of out.decisions) console.log(formatDecision(d));
  const acted = out.decisions.filter((d) => d.action !== 'kept').length;
  console.log(input.dryRun ? `dry run: ${acted} pod(s) would be terminated` : `${acted} pod(s) terminated`);
  return 0;
}
