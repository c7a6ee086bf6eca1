// Keeps a long activity's heartbeat going while it waits on one slow thing (pip installs, one large SFTP copy), so a
// short heartbeat timeout finds a dead worker within a minute without ever timing out a healthy step.
import { Context } from '@temporalio/activity';

/** How often the ticker heartbeats; well under the pod steps' 45 s heartbeat timeout. */
export const HEARTBEAT_EVERY_MS = 10_000;

/**
 * Runs `fn`, heartbeating `details()` every `everyMs` until it settles (skipped while it is undefined). Outside an
 * activity it only runs `fn`.
 */
export async function keepHeartbeating<T>(
  details: () => unknown,
  fn: () => Promise<T>,
  everyMs = HEARTBEAT_EVERY_MS,
): Promise<T> {
  let context: Context;
  try {
    // Taken now: a timer callback need not run in the activity's async context.
    context = Context.current();
  } catch {
    return fn();
  }
  const ticker = setInterval(() => {
    const d = details();
    // Nothing to say yet: an empty heartbeat would replace what an earlier attempt left for the next one.
    if (d !== undefined) context.heartbeat(d);
  }, everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(ticker);
  }
}
