// A reserved pod's life after the reserve step: wait until SSH works there (pinning its host key), terminate it
// (confirmed), and terminate every pod left under a session's names.
import { ApplicationFailure } from '@temporalio/common';
import { cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { ErrorTypes } from '../../shared/errors.js';
import { workspaceProbe, type PodEndpoint } from '../ssh/index.js';
import type { RunPodActivityDeps } from './deps.js';
import { isTransientApiError } from './errors.js';
import { keepHeartbeating } from '../heartbeat.js';
import { isLive, terminateConfirmed } from './pods.js';
import { podSshEndpoint, toPhase, type Pod } from './schemas.js';
import type {
  TerminatePodInput,
  TerminatePodOutput,
  TerminatePodsByNameInput,
  TerminatePodsByNameOutput,
  WaitForPodReadyInput,
} from './types.js';

export function createLifecycleActivities(deps: RunPodActivityDeps) {
  const { runpod } = deps;
  const terminate = (podId: string) => terminateConfirmed({ runpod, podId, pollIntervalMs: deps.pollIntervalMs });

  return {
    /**
     * Waits for RUNNING with a direct SSH port, then proves SSH works by running a command there, and pins the host key
     * it presented (returned in `ssh.hostKeySha256`; later connections must present it). A pod that goes to
     * ERROR or vanishes fails at once; one that stays portless or keeps refusing SSH fails at the deadline. Both
     * failures are non-retryable and name the reason: the workflow terminates the pod and tries the next candidate.
     * Transient API errors while polling only delay the verdict.
     */
    waitForPodReady(input: WaitForPodReadyInput): Promise<PodEndpoint> {
      // One slow API answer plus an SSH probe can outlast the heartbeat timeout: the ticker covers the gap.
      const seen = { last: 'no answer from RunPod yet' };
      return keepHeartbeating(
        () => ({ podId: input.podId, state: seen.last }),
        async () => {
          const deadline = Date.now() + input.timeoutMs;
          let sawPort = false;
          let lastStatus = 'unknown';
          for (;;) {
            let pod: Pod | null | undefined;
            try {
              pod = await runpod.getPod(input.podId, { signal: cancellationSignal() });
            } catch (err) {
              if (!isTransientApiError(err)) throw err;
              seen.last = `RunPod API trouble while polling: ${(err as Error).message}`;
            }
            if (pod === null)
              throw ApplicationFailure.create({
                type: ErrorTypes.PodGone,
                message: `pod ${input.podId} vanished while starting (RunPod answers 404)`,
                nonRetryable: true,
              });
            if (pod) {
              const phase = toPhase(pod.status);
              if (phase === 'failed' || phase === 'gone' || phase === 'exited') {
                throw ApplicationFailure.create({
                  type: ErrorTypes.PodNotReady,
                  message: `pod ${input.podId} went to ${pod.status} while starting`,
                  nonRetryable: true,
                });
              }
              lastStatus = pod.status;
              const ssh = podSshEndpoint(pod);
              seen.last = `status ${pod.status}, ${ssh ? `ssh ${ssh.host}:${ssh.port}` : 'no public SSH port'}`;
              if (ssh) {
                sawPort = true;
                try {
                  // Trust on first use: a fresh pod's host key cannot be known in advance. The key seen here is pinned
                  // in the endpoint, and every later activity's connection must present the same one.
                  const shell = await deps.connector.connect(ssh, {
                    signal: cancellationSignal(),
                    trustOnFirstUse: true,
                  });
                  try {
                    const r = await shell.exec(workspaceProbe(input.defaultWorkspaceDir), { timeoutMs: 30_000 });
                    if (r.code === 0 && r.stdout.startsWith('/')) {
                      log.info('pod ready; host key pinned', {
                        podId: input.podId,
                        hostKeySha256: shell.hostKeySha256,
                      });
                      return { ssh: { ...ssh, hostKeySha256: shell.hostKeySha256 }, workspaceDir: r.stdout.trim() };
                    }
                    seen.last = `ssh command failed: ${r.stderr.slice(-200)}`;
                  } finally {
                    shell.close();
                  }
                } catch (err) {
                  seen.last = `sshd refuses: ${(err as Error).message}`;
                }
              }
            }
            heartbeat({ podId: input.podId, state: seen.last });
            if (Date.now() > deadline) {
              throw ApplicationFailure.create({
                type: ErrorTypes.PodNotReady,
                message:
                  `pod ${input.podId} not reachable over SSH within ${input.timeoutMs} ms ` +
                  `(${sawPort ? seen.last : `never got a public SSH port; last status ${lastStatus}`})`,
                nonRetryable: true,
              });
            }
            await sleep(deps.pollIntervalMs);
          }
        },
      );
    },

    /** Terminates the pod and confirms it is gone; a pod that is already gone counts as done. */
    async terminatePod(input: TerminatePodInput): Promise<TerminatePodOutput> {
      const { alreadyGone } = await terminate(input.podId);
      log.info('pod terminated', { podId: input.podId, alreadyGone });
      return { alreadyGone, terminatedAt: new Date().toISOString() };
    },

    /**
     * Terminates (confirmed) every live pod carrying one of `podNames`: a create whose answer was lost and whose pod
     * showed up only later, or a duplicate. Nothing to do is the normal case.
     */
    async terminatePodsByName(input: TerminatePodsByNameInput): Promise<TerminatePodsByNameOutput> {
      const names = new Set(input.podNames);
      const except = new Set(input.exceptPodIds ?? []);
      const pods = (await runpod.listPods({ signal: cancellationSignal() })).filter(
        (p) => names.has(p.name) && isLive(p) && !except.has(p.id),
      );
      const terminated: TerminatePodsByNameOutput['terminated'] = [];
      for (const p of pods) {
        await terminate(p.id);
        log.warn('terminated a pod found by name', { podId: p.id, name: p.name });
        terminated.push({ podId: p.id, name: p.name });
        heartbeat({ terminated });
      }
      return { terminated };
    },
  };
}
