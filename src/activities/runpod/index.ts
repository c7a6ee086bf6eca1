// Public surface of the RunPod system: the client, its interface, the typed errors, the pure helpers, the activities.
export { createRunPodActivities } from './activities.js';
export type { RunPodActivityDeps } from './activities.js';
export { createPodWatchActivities } from './watch.js';
export type { PodWatchActivityDeps } from './watch.js';
export { RunPodClient, DEFAULT_RUNPOD_BASE_URL } from './client.js';
export type { RunPodApi, RunPodClientOptions, RunPodRequestOptions, ListPodsOptions } from './client.js';
export {
  RunPodErrorNames,
  RunPodApiError,
  RunPodNoCapacityError,
  RunPodRateLimitedError,
  RunPodInsufficientBalanceError,
  RunPodUnauthorizedError,
  RunPodForbiddenError,
  RunPodValidationError,
  RunPodCreateRejectedError,
  RunPodNotFoundError,
  RunPodConflictError,
  RunPodServerError,
  RunPodTimeoutError,
  RunPodNetworkError,
  RunPodProtocolError,
  isNoCapacity,
  isTransientApiError,
} from './errors.js';
export type { RunPodErrorKind, RunPodErrorContext, RateLimitHint } from './errors.js';
export { PodSchema, ListPodsResponseSchema, ProblemSchema, toPhase, podSshEndpoint } from './schemas.js';
export type { GpuType, Pod, ListPodsResponse, Problem, CreatePodRequest, PodPhase, PodSshEndpoint } from './schemas.js';
export type * from './types.js';
