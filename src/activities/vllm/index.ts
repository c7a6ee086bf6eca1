// Public surface of the vLLM system: the serve command line, the server probe, startup-log classification, the
// pinned install, startVllm and the typed errors.
export { createVllmActivities } from './activities.js';
export type { VllmActivityDeps } from './activities.js';
export { vllmServeCommand } from './command.js';
export type { VllmServeCommand } from './command.js';
export { ModelDoesNotFitError, ModelServerGoneError, VllmStartFailedError } from './errors.js';
export { ensureVllmVersion, sameRelease } from './install.js';
export { classifyVllmStartup, doesNotFitMessage } from './log.js';
export { vllmProbe } from './probe.js';
export type { VllmProbe } from './probe.js';
export type * from './types.js';
