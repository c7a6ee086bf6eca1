/**
 * Failure type names, shared by activities (which throw them as ApplicationFailure types) and workflows
 * (which list the non-retryable ones). Workflows import this file, so it must stay free of I/O.
 */
export const ErrorTypes = {
  // RunPod (names match the classes in src/activities/runpod/errors.ts)
  NoCapacity: 'RunPodNoCapacityError',
  RunPodUnauthorized: 'RunPodUnauthorizedError',
  RunPodForbidden: 'RunPodForbiddenError',
  RunPodBalance: 'RunPodInsufficientBalanceError',
  RunPodValidation: 'RunPodValidationError',
  PodNotReady: 'PodNotReadyError',
  PodGone: 'PodGoneError',
  /** The session gave up reserving: deadline passed, every pod failed readiness, or every candidate refused. */
  ReservationFailed: 'ReservationFailedError',
  /** The session's pod was lost (vanished, exited, unreachable) more often than `maxPodReplacements` allows. */
  PodLost: 'PodLostError',
  /** A run's results could not be brought home: the pod is kept (stopped) for `npm run fetch-results`. */
  ResultsNotHome: 'ResultsNotHomeError',
  // The shared results store failed (down, refused credentials, a bad key): retried like any transient failure.
  ResultsStore: 'ResultsStoreError',
  // SSH to the pod (src/activities/ssh/errors.ts)
  Ssh: 'SshError',
  /** The pod's SSH host key is not the pinned one (or nothing was pinned): never retried. */
  HostKeyMismatch: 'HostKeyMismatchError',
  RemoteCommand: 'RemoteCommandError',
  // The download onto the pod (src/activities/hub/errors.ts)
  DownloadFailed: 'DownloadFailedError',
  DownloadVerification: 'DownloadVerificationError',
  // vLLM (src/activities/vllm/errors.ts)
  ModelDoesNotFit: 'ModelDoesNotFitError',
  VllmStartFailed: 'VllmStartFailedError',
  // The harness (src/activities/harness/errors.ts)
  HarnessContract: 'HarnessContractError',
  // Bringing results home (src/activities/results/errors.ts)
  TransferChecksum: 'TransferChecksumError',
  /** A pod file refused: an unsafe name, a symlink or special file (the pod is untrusted). */
  UnsafePodFile: 'UnsafePodFileError',
  /** A pod file or run over the worker's transfer limits (TRANSFER_MAX_* settings). */
  TransferLimit: 'TransferLimitError',
  /** vLLM died or stopped answering under a run; the workflow restarts it (src/activities/vllm/errors.ts). */
  ModelServerGone: 'ModelServerGoneError',
  /** A harness run ended unfinished (died, failed, energy not recorded); the workflow applies the study's policy. */
  RunInterrupted: 'RunInterruptedError',
  /** The run's inputs are refused by the harness (spec, dataset, template, few-shot examples). */
  HarnessInput: 'HarnessInputError',
  // The GPU lock on the team's server (src/activities/workspace/errors.ts)
  /** The team's server has no GPU of the study's `gpuIndex` (or cannot say which GPUs it has). */
  GpuNotFound: 'GpuNotFoundError',
  /** The GPU lock cannot work on the host: its lock folder is not usable, or `flock` is missing. */
  GpuLockUnavailable: 'GpuLockUnavailableError',
  // Hugging Face Hub API (src/activities/hub/errors.ts)
  HubApi: 'HubApiError',
  HubNotFound: 'HubNotFoundError',
  // Analysis (src/activities/analysis/errors.ts)
  /** The analysis refused its input (a results folder or dataset it cannot use): retrying gives the same answer. */
  AnalysisInput: 'AnalysisInputError',
  /** The analysis crashed or printed something that is not its contract: retryable (a full disk, a killed process). */
  AnalysisFailed: 'AnalysisFailedError',
  // Study input (src/study/load.ts, src/study/validate.ts, src/activities/study)
  /** The study, its files or a workflow's input is refused: a person must fix the study file. */
  StudyInvalid: 'StudyInvalidError',
  /** The harness's input check crashed on the worker (src/activities/study): retryable. */
  HarnessCheckFailed: 'HarnessCheckFailedError',
  // The plan (src/activities/plan)
  /** A check of the phase's plan failed at the workflow's start: nothing was reserved. */
  PreflightFailed: 'PreflightFailedError',
} as const;

export type ErrorType = (typeof ErrorTypes)[keyof typeof ErrorTypes];

/** Failures that no retry can fix: a person has to change the study, the account or the code. */
export const NON_RETRYABLE_ERROR_TYPES: string[] = [
  ErrorTypes.RunPodUnauthorized,
  ErrorTypes.RunPodBalance,
  ErrorTypes.RunPodValidation,
  ErrorTypes.PodGone,
  ErrorTypes.ModelDoesNotFit,
  ErrorTypes.HarnessContract,
  // Another machine (or someone in between) at the pod's address: retrying would talk to it again.
  ErrorTypes.HostKeyMismatch,
  // A hostile or runaway pod: the same listing comes back on every retry.
  ErrorTypes.UnsafePodFile,
  ErrorTypes.TransferLimit,
  // Handled by the workflow (restart vLLM, then the interruption policy), never by retrying the same run.
  ErrorTypes.ModelServerGone,
  ErrorTypes.RunInterrupted,
  ErrorTypes.HarnessInput,
  // A person must fix the study (gpuIndex) or the server (lock folder, util-linux).
  ErrorTypes.GpuNotFound,
  ErrorTypes.GpuLockUnavailable,
  ErrorTypes.HubNotFound,
  ErrorTypes.AnalysisInput,
  ErrorTypes.StudyInvalid,
  ErrorTypes.PreflightFailed,
  ErrorTypes.ResultsNotHome,
];
