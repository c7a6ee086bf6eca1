// The RunPod activities, composed from one file per job: reserve.ts (create with candidate fallback, lost answers,
// duplicates), lifecycle.ts (readiness, terminate, terminate by name), pricing.ts (catalog prices) and keep.ts
// (a pod stopped, not terminated, while it holds results not yet home).
import type { RunPodActivityDeps } from './deps.js';
import { createKeepActivities } from './keep.js';
import { createLifecycleActivities } from './lifecycle.js';
import { createPricingActivities } from './pricing.js';
import { createReserveActivities } from './reserve.js';

export type { RunPodActivityDeps } from './deps.js';
export { candidateLabel, createRequest, describeAttempts } from './candidates.js';

export function createRunPodActivities(deps: RunPodActivityDeps) {
  return {
    ...createReserveActivities(deps),
    ...createLifecycleActivities(deps),
    ...createPricingActivities(deps),
    ...createKeepActivities(deps),
  };
}
