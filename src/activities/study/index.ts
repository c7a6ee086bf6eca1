export { createStudyActivities } from './activities.js';
export type { StudyActivityDeps } from './activities.js';
export { HarnessCheckClient } from './client.js';
export type { HarnessCheckApi, HarnessCheckClientOptions } from './client.js';
export { HarnessCheckFailedError } from './errors.js';
export { harnessInputFiles } from './inputs.js';
export type { HarnessInputFiles } from './inputs.js';
export type { HarnessPreflightInput, HarnessPreflightOutput } from './schemas.js';
export type * from './types.js';
