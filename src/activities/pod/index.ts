export { createPodActivities, sha256File } from './activities.js';
export type { PodActivityDeps } from './activities.js';
export { SshPodConnector } from './client.js';
export { createGpuLockActivities, gpuLockPath } from './gpu-lock.js';
export type { GpuLockActivityDeps, WorkflowRunStateLookup } from './gpu-lock.js';
export type { ExecResult, PodConnector, PodShell } from './client.js';
export * from './errors.js';
