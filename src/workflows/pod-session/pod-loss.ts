import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, log } from '@temporalio/workflow';
import { ErrorTypes } from '../../shared/errors.js';
import type { PodEndpoint } from '../../activities/ssh/index.js';
import { call, quick, watchStep } from './options.js';

/**
 * Failures that say something about the study, the model or the pod's honesty, never that the pod went away: they
 * end the session as they are, without a check (a changed host key must fail loudly, not be replaced quietly).
 */
const VERDICTS: string[] = [
  ErrorTypes.HostKeyMismatch,
  ErrorTypes.UnsafePodFile,
  ErrorTypes.TransferLimit,
  ErrorTypes.ModelDoesNotFit,
  ErrorTypes.HarnessContract,
  ErrorTypes.HarnessInput,
  ErrorTypes.StudyInvalid,
];

function isVerdict(err: unknown): boolean {
  return (
    err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && VERDICTS.includes(err.cause.type ?? '')
  );
}

/** How one stretch of work on a pod ended: it finished, or the pod was lost under it. */
export type Watched<T> = { kind: 'done'; value: T } | { kind: 'lost'; reason: string };

/**
 * Runs `work` on a rented pod while a watcher polls the pod's status. A pod that vanishes or exits cancels the work
 * at once; a step that fails on its own is followed by a check of the pod (status and an SSH login), and only a pod
 * found unusable counts as lost. Any other failure, and a cancellation of the session, is thrown as is.
 */
export async function watched<T>(a: {
  podId: string;
  endpoint: PodEndpoint;
  work: () => Promise<T>;
}): Promise<Watched<T>> {
  const watcher = new CancellationScope();
  const lost = watcher
    .run(() => call('watchPod', watchStep, `watch pod ${a.podId} while the session works on it`, { podId: a.podId }))
    .catch((err: unknown) => {
      if (!isCancellation(err)) log.warn('the pod watcher gave up; the pod is unwatched', { error: String(err) });
      return null;
    });
  const worker = new CancellationScope();
  const done = worker.run(a.work);
  // A watcher that gave up never reports a loss; the work alone decides then.
  const lostOrNever = lost.then((h) => (h ? h : new Promise<never>(() => undefined)));
  try {
    const first = await Promise.race([
      done.then((value) => ({ kind: 'done' as const, value })),
      lostOrNever.then((h) => ({ kind: 'lost' as const, reason: h.reason ?? 'pod lost' })),
    ]);
    if (first.kind === 'lost') {
      worker.cancel();
      await done.catch(() => undefined);
    }
    return first;
  } catch (err) {
    if (isCancellation(err) || isVerdict(err)) throw err;
    // A check that cannot be made (the API down too) leaves the step's own failure to tell what happened.
    const health = await call('checkPod', quick, `check pod ${a.podId} after a failed step`, {
      podId: a.podId,
      endpoint: a.endpoint,
    }).catch(() => null);
    if (!health || health.healthy) throw err;
    log.warn('a pod-side step failed and the pod is unusable', { podId: a.podId, error: String(err) });
    return { kind: 'lost', reason: health.reason ?? 'pod unusable' };
  } finally {
    watcher.cancel();
    await lost;
  }
}
