// The reserve step: one pod per name, created on the first GPU candidate that has room, adopted by name when an
// earlier attempt (or a create whose answer was lost) already made it, and never billed twice under one name.
// Over 350 lines on purpose: the candidate loop, how it reads each answer (capacity, rate limit, lost answer, rule
// refusal) and the state it heartbeats for the next attempt are one state machine, reviewed as one.
import { ApplicationFailure } from '@temporalio/common';
import { activityInfo, cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { ErrorTypes } from '../../shared/errors.js';
import { candidateLabel, candidateOf, createRequest, describeAttempts, toPodRef } from './candidates.js';
import type { RunPodActivityDeps } from './deps.js';
import {
  RunPodCreateRejectedError,
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
  isTransientApiError,
} from './errors.js';
import { keepHeartbeating } from '../heartbeat.js';
import { isLive, terminateConfirmed } from './pods.js';
import type { Pod } from './schemas.js';
import type { CandidateAttempt, ReservePodInput, ReservePodOutput } from './types.js';

const DEFAULT_MAX_RATE_LIMIT_WAIT_MS = 60_000;
const DEFAULT_LOST_CREATE_LOOKUP_MS = 45_000;

// RunPod's 403 covers two cases with no code to tell them apart: a key without the permission ("access denied",
// every candidate fails the same way) and an account that cannot use one GPU pool (only that candidate fails). The
// contract's create table says "403: skip the candidate"; we skip only when the detail names a pool, and treat any
// other 403 as the key's problem, which no candidate or retry can fix.
const POOL_RESTRICTION = /\bpool\b/i;

/** The heartbeat of a reserve attempt. `lostCreateAt` lets the next attempt resume looking for a lost create. */
interface ReserveHeartbeat {
  podName: string;
  round: number;
  activityAttempt: number;
  tried: string;
  attempts: CandidateAttempt[];
  trying?: string;
  looking?: string;
  /** When a create answer was lost (ISO time): its pod may still show up in the list. */
  lostCreateAt?: string;
}

interface FailOptions {
  type: string;
  message: string;
  nonRetryable: boolean;
  cause?: Error;
  delayMs?: number;
}

/** The live pod found under a name, and the duplicates under that name terminated on sight. */
interface ByName {
  pod: Pod | null;
  removed: string[];
}

/** A 400 that names no field and is not a capacity text: per the contract, the next candidate is tried. */
const isRuleRefusal = (err: RunPodValidationError) => err.status === 400 && err.fields.length === 0;

const createdAtMs = (p: Pod) => {
  const t = Date.parse(p.createdAt ?? '');
  return Number.isNaN(t) ? Infinity : t;
};

/** The last attempt of each candidate tried, in candidate order: what each candidate finally answered. */
function finalAttempts(attempts: CandidateAttempt[]): CandidateAttempt[] {
  const last = new Map<number, CandidateAttempt>();
  for (const a of attempts) last.set(a.index, a);
  return [...last.values()].sort((a, b) => a.index - b.index);
}

const removedNote = (removed: string[]) =>
  removed.length ? `; terminated duplicate pod(s) under the same name: ${removed.join(', ')}` : '';

export function createReserveActivities(deps: RunPodActivityDeps) {
  const { runpod } = deps;
  const maxRateLimitWaitMs = deps.maxRateLimitWaitMs ?? DEFAULT_MAX_RATE_LIMIT_WAIT_MS;
  const lostCreateLookupMs = deps.lostCreateLookupMs ?? DEFAULT_LOST_CREATE_LOOKUP_MS;

  /**
   * The live pod named `podName`, or null. Two or more under one name bill twice, so the moment they are seen the
   * one to keep (`keepPodId`, else the oldest) stays and every other is terminated (confirmed). With `keepPodId`,
   * every other pod goes even while that one is not listed yet (the list may lag its create).
   */
  async function liveByName(podName: string, keepPodId?: string): Promise<ByName> {
    const pods = (await runpod.listPods({ signal: cancellationSignal() }))
      .filter((p) => p.name === podName && isLive(p))
      .sort((a, b) => createdAtMs(a) - createdAtMs(b) || 0);
    const keepId = keepPodId ?? pods[0]?.id;
    const removed: string[] = [];
    for (const p of pods) {
      if (p.id === keepId) continue;
      log.warn('terminating a duplicate pod', { podId: p.id, podName, kept: keepId });
      await terminateConfirmed({ runpod, podId: p.id, pollIntervalMs: deps.pollIntervalMs });
      removed.push(p.id);
    }
    return { pod: pods.find((p) => p.id === keepId) ?? null, removed };
  }

  /**
   * After a lost create answer (lost at `lostAtMs`): looks for the pod by name every poll interval until the list has
   * had `lostCreateLookupMs` to show it. Transient list errors only cost a look; if no look got a list at all, the
   * last error is thrown (whether the pod exists is unknown, so no other candidate may be created).
   */
  async function findLostCreate(a: {
    podName: string;
    lostAtMs: number;
    beat: (looking: string) => void;
  }): Promise<ByName> {
    const deadline = a.lostAtMs + lostCreateLookupMs;
    let listed = false;
    let trouble: unknown;
    for (let look = 1; ; look++) {
      try {
        const found = await liveByName(a.podName);
        if (found.pod) return found;
        listed = true;
      } catch (err) {
        if (!isTransientApiError(err)) throw err;
        trouble = err;
      }
      const leftMs = deadline - Date.now();
      if (leftMs <= 0) break;
      a.beat(`pod ${a.podName} not listed after a lost create answer (look ${look}); looking ${leftMs} ms more`);
      await sleep(Math.min(deps.pollIntervalMs, leftMs));
    }
    if (!listed) throw trouble;
    return { pod: null, removed: [] };
  }

  /** When the attempt before this one lost a create answer for this name and its look is not over: when. */
  function priorLostCreateAtMs(podName: string): number | undefined {
    const prior = activityInfo().heartbeatDetails as Partial<ReserveHeartbeat> | undefined;
    if (prior?.podName !== podName || typeof prior.lostCreateAt !== 'string') return undefined;
    const at = Date.parse(prior.lostCreateAt);
    return Number.isNaN(at) || at + lostCreateLookupMs <= Date.now() ? undefined : at;
  }

  return {
    /**
     * Ensures one pod named `podName` exists. A retry first adopts the pod an earlier attempt created (RunPod v2 has
     * no idempotency key). Otherwise it walks the candidates in order, one create each, and classifies each failure:
     * no capacity -> next candidate; 429 -> wait (Retry-After and every exhausted RateLimit window), same candidate;
     * 5xx or timeout -> never create blindly again: look for the pod by name for `lostCreateLookupMs` and adopt it,
     * else next candidate; a 403 naming a pool, or a 400 that is neither capacity nor a field error -> next candidate;
     * 401, other 403, 402, 422 and field 400s -> non-retryable. When every candidate gave a 400 (or a pool 403) the
     * request breaks a rule and the attempt fails non-retryably; otherwise, when none could be created, it fails
     * retryably and Temporal backs off. Two live pods under the name are never kept: the extra one is terminated as
     * soon as it is seen. Every try is in the heartbeat details, the failure details and the result.
     */
    reservePod(input: ReservePodInput): Promise<ReservePodOutput> {
      // A rate-limit wait or a slow API call can outlast the heartbeat timeout: the ticker repeats the last details.
      const hb: { last: ReserveHeartbeat | undefined } = { last: undefined };
      return keepHeartbeating(
        () => hb.last,
        () => reserveAttempt(input, hb),
      );
    },
  };

  async function reserveAttempt(
    input: ReservePodInput,
    hb: { last: ReserveHeartbeat | undefined },
  ): Promise<ReservePodOutput> {
    const { podName, target } = input;
    const round = input.round ?? 0;
    const excluded = new Set(input.excludeCandidates ?? []);
    const activityAttempt = activityInfo().attempt;
    const attempts: CandidateAttempt[] = [];
    let lostCreateAtMs = priorLostCreateAtMs(podName);
    const beat = (extra: Pick<ReserveHeartbeat, 'trying' | 'looking'> = {}): void => {
      const details: ReserveHeartbeat = {
        podName,
        round,
        activityAttempt,
        tried: describeAttempts(attempts),
        attempts,
        ...extra,
        ...(lostCreateAtMs !== undefined ? { lostCreateAt: new Date(lostCreateAtMs).toISOString() } : {}),
      };
      hb.last = details;
      heartbeat(details);
    };
    const record = (a: Omit<CandidateAttempt, 'round' | 'at'>): void => {
      attempts.push({ ...a, round, at: new Date().toISOString() });
      beat();
    };
    const fail = (opts: FailOptions) =>
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
    const lookAfterLostCreate = (lostAtMs: number) =>
      guard(findLostCreate({ podName, lostAtMs, beat: (looking) => beat({ looking }) }));

    // A pod an earlier attempt made. When that attempt lost a create answer, keep looking as long as it would have.
    const existing = await (lostCreateAtMs !== undefined
      ? lookAfterLostCreate(lostCreateAtMs)
      : guard(liveByName(podName)));
    if (existing.pod) {
      const pod = existing.pod;
      const index = candidateOf(pod, target.candidates);
      const candidate = target.candidates[index] ?? target.candidates[0];
      if (!candidate) throw new Error('the study lists no GPU candidates');
      record({
        index,
        candidate,
        outcome: 'adopted',
        detail: `pod ${pod.id} from an earlier attempt${removedNote(existing.removed)}`,
        podId: pod.id,
      });
      log.info('adopted existing pod', { podId: pod.id, podName });
      return { pod: toPodRef(pod, index, candidate), attempts };
    }

    const eligible = [...target.candidates.entries()].filter(([i]) => !excluded.has(i));
    if (eligible.length === 0) {
      throw fail({
        type: ErrorTypes.ReservationFailed,
        message: `every GPU candidate is excluded for pod ${podName}`,
        nonRetryable: true,
      });
    }
    // A lost create (here or in the attempt before) may still surface after another candidate's create.
    let lostCreates = lostCreateAtMs === undefined ? 0 : 1;
    let rateLimitWaitedMs = 0;
    let lastRefusal: RunPodValidationError | undefined;
    for (const [index, candidate] of eligible) {
      const label = candidateLabel(candidate);
      beat({ trying: `#${index} ${label}` });
      for (;;) {
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
            const { waitMs } = err;
            if (rateLimitWaitedMs + waitMs > maxRateLimitWaitMs) {
              record({
                index,
                candidate,
                outcome: 'rate-limited',
                detail: `${err.detail}; retrying in ${waitMs} ms`,
              });
              throw fail({
                type: RunPodErrorNames.rateLimited,
                message:
                  `RunPod rate limit (429) while creating a pod: next attempt in ${waitMs} ms ` +
                  `(Retry-After and RateLimit reset; ${rateLimitWaitedMs} ms already waited in this attempt)`,
                nonRetryable: false,
                cause: err,
                delayMs: waitMs,
              });
            }
            record({
              index,
              candidate,
              outcome: 'rate-limited',
              detail: `waiting ${waitMs} ms (Retry-After and RateLimit reset), then this candidate again`,
            });
            await sleep(waitMs);
            rateLimitWaitedMs += waitMs;
            continue;
          }
          if (
            err instanceof RunPodServerError ||
            err instanceof RunPodTimeoutError ||
            err instanceof RunPodNetworkError
          ) {
            // The create may have happened even though the answer was lost: look before anything else.
            lostCreateAtMs = Date.now();
            const found = await lookAfterLostCreate(lostCreateAtMs);
            if (found.pod) {
              record({
                index,
                candidate,
                outcome: 'adopted',
                detail: `pod ${found.pod.id} created despite: ${err.message}${removedNote(found.removed)}`,
                podId: found.pod.id,
              });
              return { pod: toPodRef(found.pod, index, candidate), attempts };
            }
            lostCreates++;
            record({
              index,
              candidate,
              outcome: 'server-error',
              detail: `${err.message}; no pod named ${podName} listed within ${lostCreateLookupMs} ms`,
            });
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
          if (err instanceof RunPodValidationError && isRuleRefusal(err)) {
            record({ index, candidate, outcome: 'rejected', detail: `400 ${err.detail}` });
            lastRefusal = err;
            break;
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
        log.info('pod created', { podId: pod.id, candidate: label });
        const { removed } = lostCreates > 0 ? await guard(liveByName(podName, pod.id)) : { removed: [] };
        record({
          index,
          candidate,
          outcome: 'created',
          detail:
            `pod ${pod.id} in ${pod.dataCenterId ?? '?'}` +
            `${activityAttempt > 1 ? ` (reserve attempt ${activityAttempt})` : ''}${removedNote(removed)}`,
          podId: pod.id,
        });
        return { pod: toPodRef(pod, index, candidate), attempts };
      }
    }

    const finals = finalAttempts(attempts);
    if (finals.every((a) => a.outcome === 'forbidden')) {
      throw fail({
        type: ErrorTypes.RunPodForbidden,
        message: `the account cannot use any GPU candidate's pool: ${describeAttempts(attempts)}`,
        nonRetryable: true,
      });
    }
    if (finals.every((a) => a.outcome === 'rejected' || a.outcome === 'forbidden')) {
      throw rejectedEverywhere(finals, attempts, lastRefusal);
    }
    throw fail({
      type: ErrorTypes.NoCapacity,
      message: `no GPU candidate could be reserved (${describeAttempts(attempts)}); retrying later`,
      nonRetryable: false,
    });
  }
}

/** Every candidate refused with a rule 400 (or a pool 403): a typed, non-retryable error listing each answer. */
function rejectedEverywhere(
  finals: CandidateAttempt[],
  attempts: CandidateAttempt[],
  cause: RunPodValidationError | undefined,
): RunPodCreateRejectedError {
  return new RunPodCreateRejectedError({
    status: 400,
    method: 'POST',
    path: '/pods',
    detail:
      `every GPU candidate (${finals.length}) refused the create with a 400 that is neither a capacity shortage ` +
      `nor a field error: the request breaks one of RunPod's rules, so retrying cannot help; check the study file's ` +
      `target. Answers: ${describeAttempts(finals)}`,
    errors: cause?.errors,
    requestId: cause?.requestId,
    cause,
    details: attempts,
  });
}
