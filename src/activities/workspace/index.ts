// Public surface of the workspace system: preparing a pod's workspace (uploads, pinned installs), its watchdog,
// stopping the session's processes, and the GPU lock on the team's own server.
export { createWorkspaceActivities } from './activities.js';
export type { WorkspaceActivityDeps } from './activities.js';
export { GpuLockUnavailableError, GpuNotFoundError } from './errors.js';
export { createGpuLockActivities, gpuLockPath } from './gpu-lock.js';
export type { GpuLockActivityDeps, WorkflowRunStateLookup } from './gpu-lock.js';
export { ensureWatchdog } from './watchdog.js';
export type { EnsureWatchdogOptions } from './watchdog.js';
export type * from './types.js';
