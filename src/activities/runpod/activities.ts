// The RunPod activities, composed from one file per job: reserve.ts (create with candidate fallback, lost answers,
// duplicates), lifecycle.ts (readiness, terminate, terminate by name) and pricing.ts (catalog prices).
import type { RunPodActivityDeps } from './deps.js';
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
  };
}
