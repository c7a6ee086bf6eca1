// The billing meter: per-pod accrual while a pod holds its machine, kept after deletion, and its snapshot.
import type { PodStatus } from './model.js';

export interface BillingPodEntry {
  podId: string;
  name: string;
  /** USD per hour while accruing. */
  costPerHr: number;
  billedMs: number;
  usd: number;
  accruing: boolean;
  createdAt: string;
  deletedAt: string | null;
}

export interface BillingSnapshot {
  totalUsd: number;
  /** Sum of costPerHr over pods accruing right now: 0 means no leaked spend. */
  accruingUsdPerHr: number;
  pods: BillingPodEntry[];
}

interface BillingRecord {
  podId: string;
  name: string;
  costPerHr: number;
  billedMs: number;
  openSinceMs: number | null;
  createdAtMs: number;
  deletedAtMs: number | null;
}

/** Whether a pod in `status` accrues cost. */
export function isBillable(status: PodStatus, billProvisioning: boolean): boolean {
  return (
    status === 'RUNNING' ||
    // An ERROR pod still holds its GPUs until someone terminates it.
    status === 'ERROR' ||
    ((status === 'PROVISIONING' || status === 'STARTING') && billProvisioning)
  );
}

export class BillingMeter {
  readonly #records = new Map<string, BillingRecord>();
  /** Set by stop(): nothing starts accruing afterwards. */
  #stopped = false;

  /** Starts a pod's record, not yet accruing. */
  open(entry: { podId: string; name: string; costPerHr: number; createdAtMs: number }): void {
    this.#records.set(entry.podId, { ...entry, billedMs: 0, openSinceMs: null, deletedAtMs: null });
  }

  rename(podId: string, name: string): void {
    const b = this.#records.get(podId);
    if (b) b.name = name;
  }

  /** Starts accrual (unless the meter was stopped) or ends it, for a pod with a record. */
  setAccruing(podId: string, accruing: boolean): void {
    const b = this.#records.get(podId);
    if (!b) return;
    if (accruing && b.openSinceMs === null && !this.#stopped) b.openSinceMs = Date.now();
    if (!accruing) this.close(podId, false);
  }

  /** Ends accrual; `deleted` also stamps the deletion time. */
  close(podId: string, deleted: boolean): void {
    const b = this.#records.get(podId);
    if (!b) return;
    const now = Date.now();
    if (b.openSinceMs !== null) {
      b.billedMs += now - b.openSinceMs;
      b.openSinceMs = null;
    }
    if (deleted) b.deletedAtMs = now;
  }

  /** Ends every accrual at `nowMs` for good (the emulator is closing). */
  stop(nowMs: number): void {
    this.#stopped = true;
    for (const b of this.#records.values()) {
      if (b.openSinceMs !== null) {
        b.billedMs += nowMs - b.openSinceMs;
        b.openSinceMs = null;
      }
    }
  }

  snapshot(): BillingSnapshot {
    const now = Date.now();
    const pods = [...this.#records.values()].map((b): BillingPodEntry => {
      const billedMs = b.billedMs + (b.openSinceMs === null ? 0 : now - b.openSinceMs);
      return {
        podId: b.podId,
        name: b.name,
        costPerHr: b.costPerHr,
        billedMs,
        usd: usdFor(b.costPerHr, billedMs),
        accruing: b.openSinceMs !== null,
        createdAt: new Date(b.createdAtMs).toISOString(),
        deletedAt: b.deletedAtMs === null ? null : new Date(b.deletedAtMs).toISOString(),
      };
    });
    return {
      totalUsd: round6(pods.reduce((s, p) => s + p.usd, 0)),
      accruingUsdPerHr: round6(pods.filter((p) => p.accruing).reduce((s, p) => s + p.costPerHr, 0)),
      pods,
    };
  }
}

function usdFor(costPerHr: number, ms: number): number {
  return round6((costPerHr * ms) / 3_600_000);
}

export function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
