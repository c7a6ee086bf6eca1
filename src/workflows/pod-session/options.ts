import { proxyActivities, type ActivityFunctionWithOptions, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import { NON_RETRYABLE_ERROR_TYPES } from '../../shared/errors.js';
import type { ReservationSettings } from '../../study/schema.js';

const nonRetryableErrorTypes = NON_RETRYABLE_ERROR_TYPES;

/** Every activity as proxyActivities returns it: callable, and with `executeWithOptions` for per-call options. */
type SessionActivities = { [K in keyof Activities]: ActivityFunctionWithOptions<Activities[K]> };

/** One proxy; each call passes its own options (timeouts, retries) and a summary the Web UI shows. */
const acts: SessionActivities = proxyActivities<Activities>({ startToCloseTimeout: '10m' });

export function call<K extends keyof Activities>(
  name: K,
  options: ActivityOptions,
  summary: string,
  ...args: Parameters<Activities[K]>
): Promise<Awaited<ReturnType<Activities[K]>>> {
  return acts[name].executeWithOptions({ ...options, summary }, args);
}

/** Short calls: metadata, manifests, locks, stopping processes. */
export const quick: ActivityOptions = {
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes },
};

/**
 * A worker that dies under a pod step is noticed this soon (and the step retried elsewhere) while its pod bills. Every
 * pod step heartbeats at least every poll interval (5 s by default) or on a 10 s ticker around its long waits.
 */
export const POD_STEP_HEARTBEAT_TIMEOUT = '45s';

/** A long step on the pod that heartbeats: it may run `startToCloseMs`, and is tried `maximumAttempts` times. */
export const podStep = (startToCloseMs: number, maximumAttempts: number): ActivityOptions => ({
  startToCloseTimeout: startToCloseMs,
  heartbeatTimeout: POD_STEP_HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '5s',
    backoffCoefficient: 2,
    maximumInterval: '2m',
    maximumAttempts,
    nonRetryableErrorTypes,
  },
});

/** A pod step retried (same backoff) as often as fits in `giveUpAfterMs`: a time budget, no attempt count. */
export const podStepUntil = (startToCloseMs: number, giveUpAfterMs: number): ActivityOptions => ({
  startToCloseTimeout: startToCloseMs,
  heartbeatTimeout: POD_STEP_HEARTBEAT_TIMEOUT,
  scheduleToCloseTimeout: giveUpAfterMs,
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2m', nonRetryableErrorTypes },
});

/**
 * One reserve round: retried with the study's backoff until the reservation deadline (`remainingMs` of it are left);
 * no attempt limit, the schedule-to-close deadline ends the retries.
 */
export const reserveStep = (reservation: ReservationSettings, remainingMs: number): ActivityOptions => ({
  startToCloseTimeout: '10m',
  heartbeatTimeout: POD_STEP_HEARTBEAT_TIMEOUT,
  scheduleToCloseTimeout: remainingMs,
  retry: {
    initialInterval: reservation.initialIntervalMs,
    backoffCoefficient: 2,
    maximumInterval: reservation.maximumIntervalMs,
    nonRetryableErrorTypes,
  },
});

// Teardown must outlast any outage: many attempts, capped backoff.
export const teardownStep: ActivityOptions = {
  startToCloseTimeout: '2m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 100 },
};

/** Teardown that has a backstop when it gives up (the reaper for pods, the takeover for a GPU lock): fewer attempts. */
export const backedUpTeardownStep: ActivityOptions = {
  ...teardownStep,
  retry: { ...teardownStep.retry, maximumAttempts: 10 },
};

/** Log collection is worth a second try, never a wait. */
export const collectLogsStep: ActivityOptions = { startToCloseTimeout: '5m', retry: { maximumAttempts: 2 } };

/**
 * The pod watcher runs beside the pod-side steps for as long as they take; a worker that dies under it is noticed by
 * its heartbeat, and a watcher that keeps failing only leaves the steps unwatched.
 */
export const watchStep: ActivityOptions = {
  startToCloseTimeout: '7d',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '5s', maximumInterval: '1m', maximumAttempts: 20 },
};
