import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { ReapOrphanPodsInput, ReapOrphanPodsOutput } from '../activities/reaper/index.js';

const { reapOrphanPods } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '10s', maximumInterval: '1m', maximumAttempts: 5 },
});

/** Run by the `gpustudy-pod-reaper` Schedule: terminates project pods whose owning workflow is gone. */
export async function reaperWorkflow(input: ReapOrphanPodsInput): Promise<ReapOrphanPodsOutput> {
  const out = await reapOrphanPods(input);
  const acted = out.decisions.filter((d) => d.action !== 'kept');
  setCurrentDetails(
    `${out.decisions.length} project pods checked; ${acted.length} ${input.dryRun ? 'would be' : ''} terminated` +
      acted.map((d) => `\n- ${d.podId} ${d.name}: ${d.reason}`).join(''),
  );
  return out;
}
