/**
 * Inputs and outputs of the workspace activities (preparePod and its watchdog, stopPodWork, the GPU lock): one
 * object in, one object out. Pure types, safe for workflow code (which imports them with `import type`). Nothing
 * here may carry a secret: Temporal stores all of it in workflow history.
 */

import type { PromptStrategy } from '../../study/schema.js';
import type { PodEndpoint } from '../ssh/index.js';

/** What the pod's dead-man's switch does; secrets never appear here (the key is read by the activity). */
export interface PodWatchdogInput {
  /** The pod's id (RUNPOD_POD_ID on the pod is the fallback). */
  podId: string | null;
  staleAfterMs: number;
  checkIntervalMs: number;
  selfStop: 'pod-key' | 'account-key-opt-in' | 'none';
}
export interface PodWatchdogStatus {
  state: 'started' | 'running';
  /** The credential the watchdog will stop the pod with; 'none' means it can only end the work. */
  stopWith: 'pod-key' | 'account-key' | 'none';
  note: string;
}

export interface PreparePodInput {
  endpoint: PodEndpoint;
  datasetPath: string;
  prompts: PromptStrategy[];
  /** The pinned vLLM version the pod must have (installed when missing or different). */
  vllmVersion: string;
  /** Install and start the dead-man's switch (rented pods only). */
  watchdog?: PodWatchdogInput;
}
export interface PreparePodOutput {
  datasetSha256: string;
  promptSha256: Record<string, string>;
  fewShotSha256: Record<string, string>;
  remote: { harnessDir: string; datasetPath: string; promptsDir: string };
  pythonVersion: string;
  vllmVersion: string;
  watchdog?: PodWatchdogStatus;
}

export interface StopPodWorkInput {
  endpoint: PodEndpoint;
}
export interface StopPodWorkOutput {
  /** The pid files whose processes were ended (vLLM, harness runs, downloads). */
  stopped: string[];
}

/** Who asks for a GPU of the team's server: the session, as the workflow knows it. */
export interface GpuLockOwner {
  study: string;
  phase: string;
  model: string;
  workflowId: string;
  runId: string;
}

/** The owner record in a GPU's lock folder on the host (`owner.json`); read back untrusted (other users write it too). */
export interface GpuLockRecord extends GpuLockOwner {
  schemaVersion: 1;
  gpuIndex: number;
  /** `user@host` of the worker that took the lock (a study file names no person). */
  startedBy: string;
  acquiredAt: string;
  /** The session's `<ws>/heartbeat`, which every pod activity touches on each poll: the holder's liveness. */
  heartbeatPath: string;
}

/** Temporal's view of a lock holder's run; 'unknown' when the run is not on this server (another team member's). */
export type WorkflowRunState = 'running' | 'closed' | 'unknown';

/** The current holder of a GPU lock, as a waiting session reports it. */
export interface GpuLockHolder {
  /** Null when the owner record could not be read; `problem` says why. */
  record: GpuLockRecord | null;
  problem: string | null;
  /** Since the holder's heartbeat (else the lock folder) was last touched, by the host's clock. */
  heartbeatAgeMs: number | null;
  runState: WorkflowRunState;
}

/** One GPU of the host, as its `nvidia-smi` (or the sandbox's simulated list) names it. */
export interface HostGpu {
  index: number;
  name: string;
  memoryMiB: number | null;
}

export interface AcquireGpuLockInput {
  endpoint: PodEndpoint;
  gpuIndex: number;
  /** The lock root on the host and when a holder counts as gone (the target's `gpuLock`). */
  lock: { dir: string; staleAfterMs: number };
  owner: GpuLockOwner;
}
export type AcquireGpuLockOutput =
  | {
      acquired: true;
      lockPath: string;
      gpu: HostGpu;
      /** `already-held`: this run held it already (a retried or repeated acquire). */
      how: 'created' | 'already-held' | 'taken-over';
      /** The holder whose lock was taken over, and why (its run closed, its heartbeat stale). */
      takenOver: { holder: GpuLockHolder; reason: string } | null;
    }
  | { acquired: false; lockPath: string; gpu: HostGpu; holder: GpuLockHolder };

export interface ReleaseGpuLockInput {
  endpoint: PodEndpoint;
  gpuIndex: number;
  lock: { dir: string };
  owner: Pick<GpuLockOwner, 'workflowId' | 'runId'>;
}
export interface ReleaseGpuLockOutput {
  /** `held-by-other`: the lock is someone else's now (taken over while this session ran), and stays. */
  outcome: 'released' | 'not-held' | 'held-by-other';
  holder: GpuLockHolder | null;
}
