import { ApplicationFailure } from '@temporalio/common';
import { activityInfo, cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { ErrorTypes } from '../../shared/errors.js';
import type {
  CandidateAttempt,
  PriceGpuCandidatesInput,
  PriceGpuCandidatesOutput,
  ReservePodInput,
  ReservePodOutput,
  TerminatePodInput,
  TerminatePodOutput,
  TerminatePodsByNameInput,
  TerminatePodsByNameOutput,
  WaitForPodReadyInput,
} from './types.js';
import type { GpuCandidate, RunPodTarget } from '../../study/schema.js';
import { workspaceProbe, type PodConnector, type PodEndpoint } from '../ssh/index.js';
import type { RunPodApi } from './client.js';
import {
  RunPodApiError,
  RunPodErrorNames,
  RunPodForbiddenError,
  RunPodInsufficientBalanceError,
  RunPodNetworkError,
  RunPodNoCapacityError,
  RunPodRateLimitedError,
  RunPodServerError,
  RunPodTimeoutError,
  RunPodUnauthorizedError,
  RunPodValidationError,
} from './errors.js';
import { podSshEndpoint, toPhase, type CreatePodRequest, type Pod } from './schemas.js';

export interface RunPodActivityDeps {
  runpod: RunPodApi;
  connector: PodConnector;
  /** Public half of the worker's SSH key, sent as the pod's PUBLIC_KEY. */
  publicKey: string;
  pollIntervalMs: number;
  /**
   * Longest `Retry-After` the reserve step waits out in place (heartbeating) before it fails the attempt and lets
   * Temporal wait instead, in ms. Default 60 000.
   */
  maxRateLimitWaitMs?: number;
  /** 429s on one candidate waited out in place before the attempt fails (retryably). Default 5. */
  maxRateLimitRetries?: number;
  /**
   * After a create answered 5xx or timed out and the pod is not listed yet, how long to wait before looking once
   * more (a list may lag the create), in ms. Default 3 000.
   */
  lostCreateRecheckMs?: number;
}

/** Env label on every pod we create: which candidate it was, so an adopted pod maps back to its candidate. */
const CANDIDATE_ENV = 'GPUSTUDY_CANDIDATE';

/** The create body for one candidate. Only fields valid in both the 2.9 and the newest schema. */
export function createRequest(
  podName: string,
  target: RunPodTarget,
  c: GpuCandidate,
  publicKey: string,
  candidateIndex = 0,
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
    env: { PUBLIC_KEY: publicKey, GPUSTUDY_POD_NAME: podName, [CANDIDATE_ENV]: String(candidateIndex) },
  };
}

/** `1x NVIDIA H100 80GB HBM3 in US-KS-2,US-TX-3 (SECURE)`. */
export function candidateLabel(c: GpuCandidate): string {
  return `${c.gpuCount}x ${c.gpuTypeId} in ${c.dataCenterIds.join(',') || 'any DC'} (${c.cloud})`;
}

/** One line per attempt, for failure messages and the Web UI. */
export function describeAttempts(attempts: CandidateAttempt[]): string {
  return attempts
    .map(
      (a) =>
        `#${a.index} ${a.candidate.gpuTypeId} [${a.candidate.dataCenterIds.join(',') || 'any DC'}]: ${a.outcome}` +
        (a.detail ? ` (${a.detail})` : ''),
    )
    .join('; ');
}

const isLive = (p: Pod) => {
  try {
    return toPhase(p.status) !== 'gone';
  } catch {
    return true; // an unknown status is still a pod that may bill
  }
};

// RunPod's 403 covers two cases with no code to tell them apart: a key without the permission ("access denied",
// every candidate fails the same way) and an account that cannot use one GPU pool (only that candidate fails). The
// contract's create table says "403: skip the candidate"; we skip only when the detail names a pool, and treat any
// other 403 as the key's problem, which no candidate or retry can fix.
const POOL_RESTRICTION = /\bpool\b/i;

/** Transient API trouble: the same call may succeed later. */
const isTransient = (err: unknown) =>
  err instanceof RunPodServerError ||
  err instanceof RunPodTimeoutError ||
  err instanceof RunPodNetworkError ||
  err instanceof RunPodRateLimitedError;

export function createRunPodActivities(deps: RunPodActivityDeps) {
  const { runpod } = deps;
  const maxRateLimitWaitMs = deps.maxRateLimitWaitMs ?? 60_000;
  const maxRateLimitRetries = deps.maxRateLimitRetries ?? 5;
  const lostCreateRecheckMs = deps.lostCreateRecheckMs ?? 3_000;

  async function adoptByName(podName: string): Promise<Pod | null> {
    const pod = await runpod.findPodByName(podName, { signal: cancellationSignal() });
    return pod && isLive(pod) ? pod : null;
  }

  /** DELETE, then GET until the pod is gone. A pod that is already gone counts as done. */
  async function terminateConfirmed(podId: string): Promise<{ alreadyGone: boolean }> {
    const existed = await runpod.deletePod(podId, { signal: cancellationSignal() });
    for (let i = 0; ; i++) {
      const pod = await runpod.getPod(podId, { signal: cancellationSignal() });
      if (!pod || !isLive(pod)) break;
      if (i >= 10) {
        throw new RunPodApiError({
          status: null,
          method: 'GET',
          path: `/pods/${podId}`,
          detail: `pod still ${pod.status} after DELETE`,
        });
      }
      await sleep(Math.min(deps.pollIntervalMs, 3_000));
    }
    return { alreadyGone: !existed };
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

  /** Which candidate an adopted pod came from: our env label, else the first candidate it fits. */
  function candidateOf(pod: Pod, candidates: GpuCandidate[]): number {
    const labelled = Number(pod.env?.[CANDIDATE_ENV]);
    if (Number.isInteger(labelled) && candidates[labelled]?.gpuTypeId === pod.gpu?.id) return labelled;
    const fits = candidates.findIndex(
      (c) =>
        c.gpuTypeId === pod.gpu?.id &&
        (c.dataCenterIds.length === 0 || c.dataCenterIds.includes(pod.dataCenterId ?? '')) &&
        (!pod.cloud || c.cloud === pod.cloud),
    );
    return Math.max(0, fits);
  }

  return {
    /**
     * Ensures one pod named `podName` exists. A retry first adopts the pod an earlier attempt created (RunPod v2 has
     * no idempotency key). Otherwise it walks the candidates in order, one create each, and classifies each failure:
     * no capacity -> next candidate; 429 -> wait Retry-After, same candidate; 5xx or timeout -> never create blindly
     * again: adopt the pod by name if it exists, else next candidate; a 403 naming a pool -> next candidate; 401, other
     * 403, 402, 400/422 -> non-retryable. When no candidate could be created the attempt fails retryably and Temporal
     * backs off. Every try is in the heartbeat details, the failure details and the result.
     */
    async reservePod(input: ReservePodInput): Promise<ReservePodOutput> {
      const { podName, target } = input;
      const round = input.round ?? 0;
      const excluded = new Set(input.excludeCandidates ?? []);
      const activityAttempt = activityInfo().attempt;
      const attempts: CandidateAttempt[] = [];
      const record = (a: Omit<CandidateAttempt, 'round' | 'at'>): void => {
        attempts.push({ ...a, round, at: new Date().toISOString() });
        heartbeat({ podName, round, activityAttempt, tried: describeAttempts(attempts), attempts });
      };
      const fail = (opts: { type: string; message: string; nonRetryable: boolean; cause?: Error; delayMs?: number }) =>
        ApplicationFailure.create({
          type: opts.type,
          message: opts.message,
          nonRetryable: opts.nonRetryable,
          details: [attempts],
          ...(opts.cause ? { cause: opts.cause } : {}),
          ...(opts.delayMs !== undefined ? { nextRetryDelay: opts.delayMs } : {}),
        });

      // 401 and 403 on any call (the list included) are the key's problem: say so, and do not retry.
      const keyRefused = (err: RunPodForbiddenError | RunPodUnauthorizedError) =>
        err instanceof RunPodUnauthorizedError
          ? fail({
              type: ErrorTypes.RunPodUnauthorized,
              message: `RunPod rejected the API key (401 ${err.detail}): check RUNPOD_API_KEY in the worker's environment.`,
              nonRetryable: true,
              cause: err,
            })
          : fail({
              type: ErrorTypes.RunPodForbidden,
              message:
                `RunPod refused the API key (403 ${err.detail}) on ${err.method} ${err.path}: the key lacks a ` +
                'permission (read-only or restricted key?). Give the worker a key with pod read and write access.',
              nonRetryable: true,
              cause: err,
            });
      const guard = async <T>(p: Promise<T>): Promise<T> => {
        try {
          return await p;
        } catch (err) {
          if (err instanceof RunPodForbiddenError || err instanceof RunPodUnauthorizedError) throw keyRefused(err);
          throw err;
        }
      };

      const existing = await guard(adoptByName(podName));
      if (existing) {
        const index = candidateOf(existing, target.candidates);
        const candidate = target.candidates[index] ?? target.candidates[0];
        if (!candidate) throw new Error('the study lists no GPU candidates');
        record({
          index,
          candidate,
          outcome: 'adopted',
          detail: `pod ${existing.id} from an earlier attempt`,
          podId: existing.id,
        });
        log.info('adopted existing pod', { podId: existing.id, podName });
        return { pod: toRef(existing, index, candidate), attempts };
      }

      const eligible = [...target.candidates.entries()].filter(([i]) => !excluded.has(i));
      if (eligible.length === 0) {
        throw fail({
          type: ErrorTypes.ReservationFailed,
          message: `every GPU candidate is excluded for pod ${podName}`,
          nonRetryable: true,
        });
      }
      let lostCreates = 0;
      for (const [index, candidate] of eligible) {
        const label = candidateLabel(candidate);
        heartbeat({ podName, round, activityAttempt, trying: `#${index} ${label}`, attempts });
        for (let rateLimited = 0; ; rateLimited++) {
          let pod: Pod;
          try {
            pod = await runpod.createPod(createRequest(podName, target, candidate, deps.publicKey, index), {
              signal: cancellationSignal(),
            });
          } catch (err) {
            if (err instanceof RunPodNoCapacityError) {
              record({ index, candidate, outcome: 'no-capacity', detail: err.detail });
              break;
            }
            if (err instanceof RunPodRateLimitedError) {
              // Rate limits are per key, not per candidate: the next candidate would get the same answer.
              const waitMs = Math.max(1, err.retryAfterS ?? 1) * 1000;
              if (waitMs > maxRateLimitWaitMs || rateLimited >= maxRateLimitRetries) {
                record({
                  index,
                  candidate,
                  outcome: 'rate-limited',
                  detail: `${err.detail}; retrying in ${waitMs} ms`,
                });
                throw fail({
                  type: RunPodErrorNames.rateLimited,
                  message: `RunPod rate limit (429) while creating a pod: next attempt in ${waitMs} ms (Retry-After)`,
                  nonRetryable: false,
                  cause: err,
                  delayMs: waitMs,
                });
              }
              record({
                index,
                candidate,
                outcome: 'rate-limited',
                detail: `waiting ${waitMs} ms (Retry-After), then this candidate again`,
              });
              await sleep(waitMs);
              continue;
            }
            if (
              err instanceof RunPodServerError ||
              err instanceof RunPodTimeoutError ||
              err instanceof RunPodNetworkError
            ) {
              // The create may have happened even though the answer was lost: look before anything else.
              const adopted = await guard(findLostCreate(podName));
              if (adopted) {
                record({
                  index,
                  candidate,
                  outcome: 'adopted',
                  detail: `pod ${adopted.id} created despite: ${err.message}`,
                  podId: adopted.id,
                });
                return { pod: toRef(adopted, index, candidate), attempts };
              }
              lostCreates++;
              record({ index, candidate, outcome: 'server-error', detail: `${err.message}; no pod named ${podName}` });
              break;
            }
            if (err instanceof RunPodForbiddenError && POOL_RESTRICTION.test(err.detail)) {
              record({ index, candidate, outcome: 'forbidden', detail: err.detail });
              break;
            }
            if (err instanceof RunPodForbiddenError || err instanceof RunPodUnauthorizedError) {
              const outcome = err instanceof RunPodForbiddenError ? 'forbidden' : 'unauthorized';
              record({ index, candidate, outcome, detail: err.detail });
              throw keyRefused(err);
            }
            if (err instanceof RunPodInsufficientBalanceError) {
              record({ index, candidate, outcome: 'insufficient-balance', detail: err.detail });
              throw fail({
                type: ErrorTypes.RunPodBalance,
                message: `RunPod says the account balance is too low (402 ${err.detail}): add funds, then start the phase again.`,
                nonRetryable: true,
                cause: err,
              });
            }
            if (err instanceof RunPodValidationError) {
              const fields = err.fields.length ? err.fields.join(', ') : err.errors.join('; ') || 'no field named';
              record({ index, candidate, outcome: 'invalid-request', detail: `${err.detail} [${fields}]` });
              throw fail({
                type: ErrorTypes.RunPodValidation,
                message:
                  `RunPod refused the create request (${err.status ?? '?'} ${err.detail}) for candidate #${index} ` +
                  `(${label}); field(s): ${fields}. Fix the study file's target; retrying cannot help.`,
                nonRetryable: true,
                cause: err,
              });
            }
            throw err;
          }
          record({
            index,
            candidate,
            outcome: 'created',
            detail: `pod ${pod.id} in ${pod.dataCenterId ?? '?'}${activityAttempt > 1 ? ` (reserve attempt ${activityAttempt})` : ''}`,
            podId: pod.id,
          });
          log.info('pod created', { podId: pod.id, candidate: label });
          if (lostCreates > 0) await guard(removeDuplicates(podName, pod.id));
          return { pod: toRef(pod, index, candidate), attempts };
        }
      }

      const permanent = attempts.every((a) => a.outcome === 'forbidden');
      if (permanent) {
        throw fail({
          type: ErrorTypes.RunPodForbidden,
          message: `the account cannot use any GPU candidate's pool: ${describeAttempts(attempts)}`,
          nonRetryable: true,
        });
      }
      throw fail({
        type: ErrorTypes.NoCapacity,
        message: `no GPU candidate could be reserved (${describeAttempts(attempts)}); retrying later`,
        nonRetryable: false,
      });
    },

    /**
     * Waits for RUNNING with a direct SSH port, then proves SSH works by running a command there, and pins the host key
     * it presented (returned in `ssh.hostKeySha256`; later connections must present it). A pod that goes to
     * ERROR or vanishes fails at once; one that stays portless or keeps refusing SSH fails at the deadline. Both
     * failures are non-retryable and name the reason: the workflow terminates the pod and tries the next candidate.
     * Transient API errors while polling only delay the verdict.
     */
    async waitForPodReady(input: WaitForPodReadyInput): Promise<PodEndpoint> {
      const deadline = Date.now() + input.timeoutMs;
      let last = 'no answer from RunPod yet';
      let sawPort = false;
      let lastStatus = 'unknown';
      for (;;) {
        let pod: Pod | null | undefined;
        try {
          pod = await runpod.getPod(input.podId, { signal: cancellationSignal() });
        } catch (err) {
          if (!isTransient(err)) throw err;
          last = `RunPod API trouble while polling: ${(err as Error).message}`;
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
          last = `status ${pod.status}, ${ssh ? `ssh ${ssh.host}:${ssh.port}` : 'no public SSH port'}`;
          if (ssh) {
            sawPort = true;
            try {
              // Trust on first use: a fresh pod's host key cannot be known in advance. The key seen here is pinned
              // in the endpoint, and every later activity's connection must present the same one.
              const shell = await deps.connector.connect(ssh, { signal: cancellationSignal(), trustOnFirstUse: true });
              try {
                const r = await shell.exec(workspaceProbe(input.defaultWorkspaceDir), { timeoutMs: 30_000 });
                if (r.code === 0 && r.stdout.startsWith('/')) {
                  log.info('pod ready; host key pinned', { podId: input.podId, hostKeySha256: shell.hostKeySha256 });
                  return { ssh: { ...ssh, hostKeySha256: shell.hostKeySha256 }, workspaceDir: r.stdout.trim() };
                }
                last = `ssh command failed: ${r.stderr.slice(-200)}`;
              } finally {
                shell.close();
              }
            } catch (err) {
              last = `sshd refuses: ${(err as Error).message}`;
            }
          }
        }
        heartbeat({ podId: input.podId, state: last });
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: ErrorTypes.PodNotReady,
            message:
              `pod ${input.podId} not reachable over SSH within ${input.timeoutMs} ms ` +
              `(${sawPort ? last : `never got a public SSH port; last status ${lastStatus}`})`,
            nonRetryable: true,
          });
        }
        await sleep(deps.pollIntervalMs);
      }
    },

    /** Terminates the pod and confirms it is gone; a pod that is already gone counts as done. */
    /**
     * Catalog price per hour of each GPU candidate (price of one GPU in the candidate's cloud x its count), for the
     * next phase's plan. Read-only; a type RunPod does not list, or a price it does not give, is null.
     */
    async priceGpuCandidates(input: PriceGpuCandidatesInput): Promise<PriceGpuCandidatesOutput> {
      const prices = new Map<string, Awaited<ReturnType<RunPodApi['getGpuType']>>>();
      for (const id of new Set(input.candidates.map((c) => c.gpuTypeId))) {
        prices.set(id, await runpod.getGpuType(id, { signal: cancellationSignal() }));
      }
      return {
        candidates: input.candidates.map((c) => {
          const type = prices.get(c.gpuTypeId) ?? null;
          const perGpu = type ? (c.cloud === 'SECURE' ? type.price.secure : type.price.community) : null;
          return { ...c, costPerHr: perGpu ? Math.round(perGpu * c.gpuCount * 10_000) / 10_000 : null };
        }),
        pricedAt: new Date().toISOString(),
      };
    },

    async terminatePod(input: TerminatePodInput): Promise<TerminatePodOutput> {
      const { alreadyGone } = await terminateConfirmed(input.podId);
      log.info('pod terminated', { podId: input.podId, alreadyGone });
      return { alreadyGone, terminatedAt: new Date().toISOString() };
    },

    /**
     * Terminates (confirmed) every live pod carrying one of `podNames`: a create whose answer was lost and whose pod
     * showed up only later, or a duplicate. Nothing to do is the normal case.
     */
    async terminatePodsByName(input: TerminatePodsByNameInput): Promise<TerminatePodsByNameOutput> {
      const names = new Set(input.podNames);
      const pods = (await runpod.listPods({ signal: cancellationSignal() })).filter(
        (p) => names.has(p.name) && isLive(p),
      );
      const terminated: TerminatePodsByNameOutput['terminated'] = [];
      for (const p of pods) {
        await terminateConfirmed(p.id);
        log.warn('terminated a pod found by name', { podId: p.id, name: p.name });
        terminated.push({ podId: p.id, name: p.name });
        heartbeat({ terminated });
      }
      return { terminated };
    },
  };

  /** After a lost create answer: look for the pod by name, and once more after a short wait (lists may lag). */
  async function findLostCreate(podName: string): Promise<Pod | null> {
    const first = await adoptByName(podName);
    if (first) return first;
    await sleep(lostCreateRecheckMs);
    return adoptByName(podName);
  }

  /** A lost create that surfaced after we created another candidate would bill twice: keep only the winner. */
  async function removeDuplicates(podName: string, keepPodId: string): Promise<void> {
    const pods = await runpod.listPods({ signal: cancellationSignal() });
    for (const p of pods) {
      if (p.name !== podName || p.id === keepPodId || !isLive(p)) continue;
      log.warn('terminating a duplicate pod from a lost create', { podId: p.id, podName });
      await terminateConfirmed(p.id);
    }
  }
}
