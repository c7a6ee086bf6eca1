// Is the session's pod still there? A watcher that runs beside the pod-side steps and returns once the pod is lost
// (vanished, exited, failed), and a one-shot check (API status, then an SSH login) for when a pod-side step failed.
import { heartbeat, log, sleep } from '@temporalio/activity';
import { HostKeyMismatchError, type PodConnector } from '../ssh/index.js';
import { keepHeartbeating } from '../heartbeat.js';
import type { RunPodApi } from './client.js';
import { RunPodApiError } from './errors.js';
import { toPhase } from './schemas.js';
import type { CheckPodInput, PodHealth, WatchPodInput } from './types.js';

export interface PodWatchActivityDeps {
  runpod: RunPodApi;
  connector: PodConnector;
  pollIntervalMs: number;
}

/** Why the pod as RunPod shows it can no longer do the session's work, or null while it can. */
async function lostReason(runpod: RunPodApi, podId: string): Promise<string | null> {
  const pod = await runpod.getPod(podId);
  if (!pod) return `pod ${podId} vanished (RunPod answers 404)`;
  const phase = toPhase(pod.status);
  if (phase === 'running' || phase === 'starting') return null;
  return `pod ${podId} is ${pod.status}`;
}

export function createPodWatchActivities(deps: PodWatchActivityDeps) {
  return {
    /**
     * Polls the pod's status until it is lost, then returns why; runs until the workflow cancels it (the session's
     * pod-side work ended). A failing API is not a lost pod: the watcher logs it and asks again.
     */
    async watchPod(input: WatchPodInput): Promise<PodHealth> {
      const everyMs = input.pollIntervalMs ?? deps.pollIntervalMs;
      const seen = { polls: 0 };
      // A slow status answer must not look like a dead worker: the ticker heartbeats through it.
      return keepHeartbeating(
        () => seen,
        () => poll(),
      );

      async function poll(): Promise<PodHealth> {
        for (let polls = 0; ; polls++) {
          seen.polls = polls;
          try {
            const reason = await lostReason(deps.runpod, input.podId);
            if (reason) {
              log.warn('pod lost', { podId: input.podId, reason });
              return { healthy: false, reason };
            }
          } catch (err) {
            if (!(err instanceof RunPodApiError)) throw err;
            log.warn('could not read the pod status; asking again', { podId: input.podId, error: err.message });
          }
          heartbeat({ polls });
          // Cancellable: the workflow cancels the watcher when the pod's work is over.
          await sleep(everyMs);
        }
      }
    },

    /**
     * After a pod-side step failed: is the pod still usable (RUNNING per RunPod and accepting an SSH login with its
     * pinned host key)? A failure of the API itself is thrown (retried), never taken for a lost pod.
     */
    async checkPod(input: CheckPodInput): Promise<PodHealth> {
      const reason = await lostReason(deps.runpod, input.podId);
      if (reason) return { healthy: false, reason };
      try {
        const shell = await deps.connector.connect(input.endpoint.ssh);
        try {
          const r = await shell.exec('true', { timeoutMs: 30_000 });
          if (r.code !== 0) return { healthy: false, reason: `pod ${input.podId}: a login shell exits ${r.code}` };
        } finally {
          shell.close();
        }
      } catch (err) {
        // Another machine at the pod's address is a verdict to report, never a pod to quietly replace.
        if (err instanceof HostKeyMismatchError) throw err;
        return {
          healthy: false,
          reason: `pod ${input.podId} is RUNNING but unreachable over SSH: ${(err as Error).message}`,
        };
      }
      return { healthy: true, reason: null };
    },
  };
}
