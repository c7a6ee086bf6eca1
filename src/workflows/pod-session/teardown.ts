import { log } from '@temporalio/workflow';
import { describeGpuHolder } from '../../shared/gpu-lock.js';
import type { CandidateAttempt, PodRef } from '../../activities/runpod/index.js';
import type { PodEndpoint } from '../../activities/ssh/index.js';
import type { PodSessionProgress } from '../types.js';
import { backedUpTeardownStep, call, collectLogsStep, quick, teardownStep } from './options.js';

/** One step that undoes something the session acquired. */
export interface Compensation {
  undo: () => Promise<unknown>;
}

/**
 * The session's compensation list, as in Temporal's saga sample: a compensation is pushed as each resource is
 * acquired (a pod name, a pod, a GPU lock, the workspace) and dropped again if the session releases the resource on
 * the way; `runAll` undoes what is left in reverse order of acquisition. The best-effort steps catch and log their own
 * failures; a pod that cannot be terminated fails the session (it may still bill; the reaper is the backstop).
 */
export class Compensations {
  private readonly list: Compensation[] = [];

  /** Adds a compensation; the returned function drops it (the resource was released already). */
  push(compensation: Compensation): () => void {
    this.list.unshift(compensation);
    return () => {
      const i = this.list.indexOf(compensation);
      if (i >= 0) this.list.splice(i, 1);
    };
  }

  /** Undoes everything left, newest first, one at a time. */
  async runAll(): Promise<void> {
    for (const c of [...this.list]) await c.undo();
  }
}

/** The pods this session pays for: the one it holds, and those it terminated for never becoming ready. */
export interface PodLedger {
  held: PodRef | null;
  discarded: { costUsd: number; hours: number };
  /** Set when results on the held pod could not be brought home: teardown stops and keeps it instead. */
  keep: { reason: string } | null;
}

/**
 * Terminates the pod the session holds when teardown runs, and records when (the end of its billing). A pod holding
 * results that could not be brought home is kept instead: renamed for the reaper to leave alone, and stopped.
 */
export function terminateHeldPod(a: { pods: PodLedger; progress: PodSessionProgress }): Compensation {
  return {
    undo: async () => {
      const pod = a.pods.held;
      if (!pod) return;
      if (a.pods.keep) {
        a.progress.stage = 'keeping-pod';
        const k = await call('keepPod', teardownStep, `stop and keep pod ${pod.podId} (results not home)`, {
          podId: pod.podId,
          reason: a.pods.keep.reason,
        });
        a.progress.podKept = { name: k.name, at: new Date().toISOString() };
        return;
      }
      a.progress.stage = 'terminating';
      const t = await call('terminatePod', teardownStep, `terminate pod ${pod.podId}`, { podId: pod.podId });
      a.progress.podTerminatedAt = t.terminatedAt;
    },
  };
}

/**
 * A reserve cancelled or failed before it returned, or a create whose answer was lost, may have left a pod this
 * workflow holds no id for: find it by the names of every reserve round. (The reaper is the backstop when even this
 * cannot run.)
 */
export function sweepPodsByName(a: {
  podNames: string[];
  pods: PodLedger;
  attempts: CandidateAttempt[];
}): Compensation {
  return {
    undo: async () => {
      if (a.pods.held && !a.attempts.some((x) => x.outcome === 'server-error')) return;
      const { podNames } = a;
      await call('terminatePodsByName', backedUpTeardownStep, `terminate pods named ${podNames.join(', ')}`, {
        podNames,
        ...(a.pods.keep && a.pods.held ? { exceptPodIds: [a.pods.held.podId] } : {}),
      })
        .then((r) => r.terminated.length && log.warn('terminated pods found by name', { pods: r.terminated }))
        .catch((e: unknown) => log.warn('by-name pod sweep failed; the reaper will find them', { error: String(e) }));
    },
  };
}

/** Brings the workspace's logs home; `sessionBytes` is read when teardown runs (the per-session transfer limit). */
export function collectLogs(a: {
  endpoint: PodEndpoint;
  resultsSubdir: string;
  sessionBytes: () => number;
}): Compensation {
  return {
    undo: () =>
      call('collectLogs', collectLogsStep, 'collect pod logs', {
        endpoint: a.endpoint,
        resultsSubdir: a.resultsSubdir,
        sessionBytesSoFar: a.sessionBytes(),
      }).catch((e: unknown) => log.warn('log collection failed', { error: String(e) })),
  };
}

/** A server that outlives the session: free its GPU (vLLM, a harness left by a failure) for its other users. */
export function stopHostWork(a: { endpoint: PodEndpoint; host: string }): Compensation {
  return {
    undo: () =>
      call('stopPodWork', quick, `stop vLLM and the session's processes on ${a.host}`, { endpoint: a.endpoint })
        .then((r) => r.stopped.length && log.info('stopped on the host', { stopped: r.stopped }))
        .catch((e: unknown) => log.warn("could not stop the session's processes on the host", { error: String(e) })),
  };
}

/**
 * Releases this run's lock on the team server's GPU, after its work there is stopped so the next holder finds the
 * GPU free. Only this run's lock is removed; one taken over meanwhile stays with its new holder.
 */
export function releaseGpuLock(a: {
  endpoint: PodEndpoint;
  host: string;
  gpuIndex: number;
  lockDir: string;
  owner: { workflowId: string; runId: string };
}): Compensation {
  return {
    undo: () =>
      call('releaseGpuLock', backedUpTeardownStep, `release the lock of GPU ${a.gpuIndex} on ${a.host}`, {
        endpoint: a.endpoint,
        gpuIndex: a.gpuIndex,
        lock: { dir: a.lockDir },
        owner: a.owner,
      })
        .then((r) => {
          if (r.outcome === 'held-by-other' && r.holder)
            log.warn('the GPU lock was taken over while this session ran', { holder: describeGpuHolder(r.holder) });
        })
        .catch((e: unknown) =>
          log.warn('could not release the GPU lock; it is taken over once this run is closed', { error: String(e) }),
        ),
  };
}
