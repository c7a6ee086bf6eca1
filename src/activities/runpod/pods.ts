// Pod helpers shared by the reserve and lifecycle activities: liveness and confirmed termination.
import { cancellationSignal, sleep } from '@temporalio/activity';
import type { RunPodApi } from './client.js';
import { RunPodApiError } from './errors.js';
import { toPhase, type Pod } from './schemas.js';

/** A pod that may still bill: anything but TERMINATED. */
export function isLive(p: Pod): boolean {
  try {
    return toPhase(p.status) !== 'gone';
  } catch {
    return true; // an unknown status is still a pod that may bill
  }
}

/** DELETE, then GET until the pod is gone. A pod that is already gone counts as done. */
export async function terminateConfirmed(a: {
  runpod: RunPodApi;
  podId: string;
  pollIntervalMs: number;
}): Promise<{ alreadyGone: boolean }> {
  const { runpod, podId } = a;
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
    await sleep(Math.min(a.pollIntervalMs, 3_000));
  }
  return { alreadyGone: !existed };
}
