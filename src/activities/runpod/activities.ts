import { ApplicationFailure } from '@temporalio/common';
import { cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { ErrorTypes } from '../../shared/errors.js';
import type {
  CandidateAttempt,
  PodEndpoint,
  ReservePodInput,
  ReservePodOutput,
  TerminatePodInput,
  TerminatePodOutput,
  WaitForPodReadyInput,
} from '../../shared/types.js';
import type { GpuCandidate, RunPodTarget } from '../../study/schema.js';
import type { PodConnector } from '../pod/client.js';
import { workspaceProbe } from '../pod/remote.js';
import type { RunPodApi } from './client.js';
import {
  RunPodApiError,
  RunPodForbiddenError,
  RunPodNetworkError,
  RunPodNoCapacityError,
  RunPodRateLimitedError,
  RunPodServerError,
  RunPodTimeoutError,
} from './errors.js';
import { podSshEndpoint, toPhase, type CreatePodRequest, type Pod } from './schemas.js';

export interface RunPodActivityDeps {
  runpod: RunPodApi;
  connector: PodConnector;
  /** Public half of the worker's SSH key, sent as the pod's PUBLIC_KEY. */
  publicKey: string;
  pollIntervalMs: number;
  /** Longest Retry-After the reserve step waits out in place before moving on. */
  maxRateLimitWaitMs?: number;
}

/** The create body for one candidate. Only fields valid in both the 2.9 and the newest schema. */
export function createRequest(
  podName: string,
  target: RunPodTarget,
  c: GpuCandidate,
  publicKey: string,
): CreatePodRequest {
  return {
    name: podName,
    image: target.image,
    cloud: c.cloud,
    gpu: { id: c.gpuTypeId, count: c.gpuCount },
    ...(c.dataCenterIds.length ? { dataCenterIds: c.dataCenterIds } : {}),
    disk: target.containerDiskGb,
    mounts: { persistent: { size: target.volumeGb, path: target.volumeMountPath } },
    ports: ['22/tcp'],
    // The name token doubles as an env label, so a pod can be traced to its workflow from the console too.
    env: { PUBLIC_KEY: publicKey, GPUSTUDY_POD_NAME: podName },
  };
}

const isLive = (p: Pod) => {
  try {
    return toPhase(p.status) !== 'gone';
  } catch {
    return true; // an unknown status is still a pod that may bill
  }
};

export function createRunPodActivities(deps: RunPodActivityDeps) {
  const { runpod } = deps;

  async function adoptByName(podName: string): Promise<Pod | null> {
    const pod = await runpod.findPodByName(podName, { signal: cancellationSignal() });
    return pod && isLive(pod) ? pod : null;
  }

  const toRef = (pod: Pod, index: number, candidate: GpuCandidate): ReservePodOutput['pod'] => ({
    podId: pod.id,
    name: pod.name,
    candidateIndex: index,
    candidate,
    dataCenterId: pod.dataCenterId ?? null,
    cloud: pod.cloud ?? candidate.cloud,
    costPerHr: pod.cost ?? 0,
    createdAt: pod.createdAt ?? new Date().toISOString(),
  });

  return {
    /**
     * Ensures one pod named `podName` exists. A retry first adopts the pod an earlier attempt created (RunPod v2
     * has no idempotency key). Otherwise it walks the candidates in order, one create each.
     */
    async reservePod(input: ReservePodInput): Promise<ReservePodOutput> {
      const { podName, target } = input;
      const attempts: CandidateAttempt[] = [];
      const existing = await adoptByName(podName);
      if (existing) {
        const index = Math.max(
          0,
          target.candidates.findIndex((c) => c.gpuTypeId === existing.gpu?.id),
        );
        const candidate = target.candidates[index] ?? target.candidates[0];
        if (!candidate) throw new Error('the study lists no GPU candidates');
        attempts.push({ index, candidate, outcome: 'adopted', detail: `pod ${existing.id} from an earlier attempt` });
        log.info('adopted existing pod', { podId: existing.id, podName });
        return { pod: toRef(existing, index, candidate), attempts };
      }

      for (const [index, candidate] of target.candidates.entries()) {
        const label = `${candidate.gpuCount}x ${candidate.gpuTypeId} in ${candidate.dataCenterIds.join(',') || 'any DC'} (${candidate.cloud})`;
        heartbeat({ candidate: index, label });
        for (let rateLimitedTries = 0; ; rateLimitedTries++) {
          try {
            const pod = await runpod.createPod(createRequest(podName, target, candidate, deps.publicKey), {
              signal: cancellationSignal(),
            });
            attempts.push({
              index,
              candidate,
              outcome: 'created',
              detail: `pod ${pod.id} in ${pod.dataCenterId ?? '?'}`,
            });
            log.info('pod created', { podId: pod.id, candidate: label });
            return { pod: toRef(pod, index, candidate), attempts };
          } catch (err) {
            if (err instanceof RunPodNoCapacityError) {
              attempts.push({ index, candidate, outcome: 'no-capacity', detail: err.detail });
            } else if (err instanceof RunPodRateLimitedError && rateLimitedTries < 3) {
              const waitMs = Math.min((err.retryAfterS ?? 5) * 1000, deps.maxRateLimitWaitMs ?? 60_000);
              await sleep(waitMs);
              continue;
            } else if (err instanceof RunPodRateLimitedError) {
              attempts.push({ index, candidate, outcome: 'rate-limited', detail: err.detail });
            } else if (
              err instanceof RunPodServerError ||
              err instanceof RunPodTimeoutError ||
              err instanceof RunPodNetworkError
            ) {
              // The create may have happened even though the answer was lost: look before moving on.
              const adopted = await adoptByName(podName);
              if (adopted) {
                attempts.push({
                  index,
                  candidate,
                  outcome: 'adopted',
                  detail: `pod ${adopted.id} created despite ${err.message}`,
                });
                return { pod: toRef(adopted, index, candidate), attempts };
              }
              attempts.push({ index, candidate, outcome: 'server-error', detail: err.message });
            } else if (err instanceof RunPodForbiddenError) {
              attempts.push({ index, candidate, outcome: 'forbidden', detail: err.detail });
            } else {
              throw err; // 401, 402, 422: no candidate can succeed
            }
          }
          break;
        }
      }
      const summary = attempts.map(
        (a) => `#${a.index} ${a.candidate.gpuTypeId} [${a.candidate.dataCenterIds.join(',') || 'any'}]: ${a.outcome}`,
      );
      throw ApplicationFailure.create({
        type: ErrorTypes.NoCapacity,
        message: `no GPU candidate could be reserved (${summary.join('; ')}); retrying later`,
        details: [attempts],
      });
    },

    /** Waits for RUNNING with a direct SSH port, then proves SSH works by running a command there. */
    async waitForPodReady(input: WaitForPodReadyInput): Promise<PodEndpoint> {
      const deadline = Date.now() + input.timeoutMs;
      let last: string;
      for (;;) {
        const pod = await runpod.getPod(input.podId, { signal: cancellationSignal() });
        if (!pod)
          throw ApplicationFailure.create({
            type: ErrorTypes.PodGone,
            message: `pod ${input.podId} no longer exists`,
            nonRetryable: true,
          });
        const phase = toPhase(pod.status);
        if (phase === 'failed' || phase === 'gone' || phase === 'exited') {
          throw ApplicationFailure.create({
            type: ErrorTypes.PodNotReady,
            message: `pod ${input.podId} is ${pod.status}`,
            nonRetryable: true,
          });
        }
        const ssh = podSshEndpoint(pod);
        last = `status ${pod.status}, ${ssh ? `ssh ${ssh.host}:${ssh.port}` : 'no SSH port yet'}`;
        if (ssh) {
          try {
            const shell = await deps.connector.connect(ssh, { signal: cancellationSignal() });
            try {
              const r = await shell.exec(workspaceProbe(input.defaultWorkspaceDir), { timeoutMs: 30_000 });
              if (r.code === 0 && r.stdout.startsWith('/')) return { ssh, workspaceDir: r.stdout.trim() };
              last = `ssh command failed: ${r.stderr.slice(-200)}`;
            } finally {
              shell.close();
            }
          } catch (err) {
            last = `ssh not accepting yet: ${(err as Error).message}`;
          }
        }
        heartbeat({ podId: input.podId, state: last });
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: ErrorTypes.PodNotReady,
            message: `pod ${input.podId} not reachable over SSH within ${input.timeoutMs} ms (${last})`,
            nonRetryable: true,
          });
        }
        await sleep(deps.pollIntervalMs);
      }
    },

    /** Terminates the pod and confirms it is gone; a pod that is already gone counts as done. */
    async terminatePod(input: TerminatePodInput): Promise<TerminatePodOutput> {
      const existed = await runpod.deletePod(input.podId, { signal: cancellationSignal() });
      for (let i = 0; ; i++) {
        const pod = await runpod.getPod(input.podId, { signal: cancellationSignal() });
        if (!pod || !isLive(pod)) break;
        if (i >= 10) {
          throw new RunPodApiError({
            status: null,
            method: 'GET',
            path: `/pods/${input.podId}`,
            detail: `pod still ${pod.status} after DELETE`,
          });
        }
        await sleep(Math.min(deps.pollIntervalMs, 3_000));
      }
      log.info('pod terminated', { podId: input.podId, alreadyGone: !existed });
      return { alreadyGone: !existed, terminatedAt: new Date().toISOString() };
    },
  };
}
