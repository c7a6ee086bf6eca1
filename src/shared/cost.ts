/**
 * What a pod costs: RunPod bills its hourly price from the pod's creation to its termination. Pure and
 * deterministic (safe in workflows): the caller passes the end time (the termination, or "now" for a running pod).
 */
export interface PodBillingSpan {
  /** ISO time the pod was created. */
  createdAt: string;
  /** ISO time it was terminated, or the time to price a running pod up to. */
  endedAt: string;
}

const MS_PER_HOUR = 3_600_000;

/** Hours a pod billed between create and end (never below zero, whatever the clocks say). */
export function podHours({ createdAt, endedAt }: PodBillingSpan): number {
  return Math.max(0, Date.parse(endedAt) - Date.parse(createdAt)) / MS_PER_HOUR;
}

/** Pod cost in USD: cost per hour x hours between create and end. */
export function podCostUsd({ costPerHr, ...span }: PodBillingSpan & { costPerHr: number }): number {
  return costPerHr * podHours(span);
}
