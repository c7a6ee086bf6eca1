// What the RunPod activities are built from: the API client, the SSH connector, the worker's key and the timings.
import type { PodConnector } from '../ssh/index.js';
import type { RunPodApi } from './client.js';

export interface RunPodActivityDeps {
  runpod: RunPodApi;
  connector: PodConnector;
  /** Public half of the worker's SSH key, sent as the pod's PUBLIC_KEY. */
  publicKey: string;
  pollIntervalMs: number;
  /**
   * Time budget of one reserve attempt for waiting out 429s on create in place, in ms. Each wait is the larger of
   * `Retry-After` and the reset of every exhausted `RateLimit` window; one that would overrun the budget fails the
   * attempt retryably with that wait as the next retry's delay, so Temporal waits instead. Default 60 000.
   */
  maxRateLimitWaitMs?: number;
  /**
   * After a create answered 5xx or timed out (the pod may exist all the same): how long to keep looking for it by
   * name, every `pollIntervalMs` and heartbeating, before taking it as never made and trying the next candidate, in
   * ms. RunPod's list may show a new pod only a while after the create. A retried reserve attempt resumes the look
   * of the attempt before it. Default 45 000.
   */
  lostCreateLookupMs?: number;
}
