export { createReaperActivities } from './activities.js';
export type { ReaperActivityDeps } from './activities.js';
export { formatDecision, reapOrphanPods } from './reaper.js';
export type { ReaperDeps, WorkflowStatusLookup } from './reaper.js';
export { temporalWorkflowStatus } from './client.js';
export type * from './types.js';
