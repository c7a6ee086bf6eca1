// Public surface of the harness system: its contract (the files the pod's harness writes, with their schema version),
// its typed errors, and runInference.
export { createHarnessActivities } from './activities.js';
export type { HarnessActivityDeps } from './activities.js';
export { HarnessContractError, HarnessInputError, RunInterruptedError } from './errors.js';
export type { RunInterruptionCause } from './errors.js';
export { EnvironmentSchema, HARNESS_SCHEMA_VERSION, HarnessProgressSchema, MetricsSchema } from './schemas.js';
export type { Environment, HarnessProgress } from './schemas.js';
export type * from './types.js';
