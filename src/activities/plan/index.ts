export { createPlanActivities, sessionTimeEstimates } from './activities.js';
export type { PlanActivityDeps } from './activities.js';
export { PreflightFailedError } from './errors.js';
export type * from './types.js';
