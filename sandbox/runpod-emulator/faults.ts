// The book of injected faults: request storms and latency, account faults, create 5xx and 400s, pending pod rules.
import type { CapacityModel } from './catalog.js';
import type { ParsedFault, PodFaultEffect } from './control.js';

/** The knobs of a 'pod' fault that its effects read. */
export interface PodFaultParams {
  afterMs: number;
  afterLogins: number;
  linkTarget: string;
  oversizeBytes: number;
}

export interface FaultsSnapshot {
  create5xx: { status: number; remaining: number }[];
  storms: {
    status: number;
    remaining: number;
    retryAfterS: number;
    exhausted?: { window: 'minute' | 'hour' | 'day'; resetS: number }[];
    method?: string;
    pathPrefix?: string;
  }[];
  latency: { delayMs: number; remaining: number; method?: string; pathPrefix?: string }[];
  insufficientBalance: boolean;
  forbiddenKeys: string[];
  restrictedGpuTypes: string[];
  /** From 'create-400': creates of `gpuTypeId` (of any type when unset) answer 400 with `detail`. */
  rejectedCreates: { gpuTypeId?: string; detail: string }[];
  staleCatalog: boolean;
  podRules: ({ effect: PodFaultEffect; namePrefix?: string; remaining: number } & PodFaultParams)[];
}

type Storm = FaultsSnapshot['storms'][number];
type Latency = FaultsSnapshot['latency'][number];

/** A fault the book keeps: every fault but a 'pod' fault aimed at one existing pod. */
export type BookedFault =
  Exclude<ParsedFault, { type: 'pod' }> | (Extract<ParsedFault, { type: 'pod' }> & { podId?: undefined });

export class FaultBook {
  readonly #catalog: CapacityModel;
  readonly #f: FaultsSnapshot = emptyFaults();
  /** From 'pod-env' faults: session environment for pods created from now on, over `podEnv`. */
  #extraPodEnv: Record<string, string> = {};

  constructor(catalog: CapacityModel) {
    this.#catalog = catalog;
  }

  get insufficientBalance(): boolean {
    return this.#f.insufficientBalance;
  }

  get extraPodEnv(): Record<string, string> {
    return this.#extraPodEnv;
  }

  isForbidden(apiKey: string): boolean {
    return this.#f.forbiddenKeys.includes(apiKey);
  }

  isRestricted(gpuTypeId: string): boolean {
    return this.#f.restrictedGpuTypes.includes(gpuTypeId);
  }

  /** The 400 detail a create of this GPU type (undefined: a CPU pod) gets from a 'create-400' fault, or null. */
  createRejection(gpuTypeId: string | undefined): string | null {
    const hit = this.#f.rejectedCreates.find((r) => r.gpuTypeId === undefined || r.gpuTypeId === gpuTypeId);
    return hit?.detail ?? null;
  }

  /** Books one fault. A 'pod' fault becomes a rule for pods to come: one with a podId is the caller's to apply. */
  inject(fault: ParsedFault): void {
    const f = this.#f;
    switch (fault.type) {
      case 'clear':
        Object.assign(f, emptyFaults());
        this.#catalog.staleCatalog = false;
        this.#extraPodEnv = {};
        return;
      case 'pod-env':
        this.#extraPodEnv = { ...this.#extraPodEnv, ...fault.env };
        return;
      case 'create-5xx':
        f.create5xx.push({ status: fault.status, remaining: fault.count });
        return;
      case 'storm':
        f.storms.push(
          stripUndefined({
            status: fault.status,
            remaining: fault.requests,
            retryAfterS: fault.retryAfterS,
            exhausted: fault.exhausted,
            method: fault.method?.toUpperCase(),
            pathPrefix: fault.pathPrefix,
          }),
        );
        return;
      case 'latency':
        f.latency.push(
          stripUndefined({
            delayMs: fault.delayMs,
            remaining: fault.requests,
            method: fault.method?.toUpperCase(),
            pathPrefix: fault.pathPrefix,
          }),
        );
        return;
      case 'insufficient-balance':
        f.insufficientBalance = fault.enabled;
        return;
      case 'forbidden-key':
        f.forbiddenKeys = toggle(f.forbiddenKeys, fault.apiKey, fault.enabled);
        return;
      case 'restricted-pool':
        f.restrictedGpuTypes = toggle(f.restrictedGpuTypes, fault.gpuTypeId, fault.enabled);
        return;
      case 'create-400': {
        const rest = f.rejectedCreates.filter((r) => r.gpuTypeId !== fault.gpuTypeId);
        const entry = stripUndefined({ gpuTypeId: fault.gpuTypeId, detail: fault.detail });
        f.rejectedCreates = fault.enabled ? [...rest, entry] : rest;
        return;
      }
      case 'stale-catalog':
        f.staleCatalog = fault.enabled;
        this.#catalog.staleCatalog = fault.enabled;
        return;
      case 'pod':
        f.podRules.push(
          stripUndefined({
            effect: fault.effect,
            namePrefix: fault.namePrefix,
            remaining: fault.count,
            ...podFaultParams(fault),
          }),
        );
        return;
    }
  }

  /** Consumes one storm response for this request, if one matches. */
  takeStorm(method: string, path: string): Storm | null {
    return takeMatching(this.#f.storms, method, path, (s) => (this.#f.storms = s));
  }

  /** Consumes one latency injection for this request, if one matches. */
  takeLatency(method: string, path: string): Latency | null {
    return takeMatching(this.#f.latency, method, path, (s) => (this.#f.latency = s));
  }

  /** Consumes one 'create-5xx': the status the create answers, or null. */
  takeCreate5xx(): number | null {
    const failing = this.#f.create5xx.find((f) => f.remaining > 0);
    if (!failing) return null;
    failing.remaining--;
    this.#f.create5xx = this.#f.create5xx.filter((f) => f.remaining > 0);
    return failing.status;
  }

  /** Consumes the pod rules a new pod with this name matches, applying each in turn. */
  applyPodRules(podName: string, apply: (effect: PodFaultEffect, params: PodFaultParams) => void): void {
    for (const rule of this.#f.podRules) {
      if (rule.remaining <= 0 || (rule.namePrefix !== undefined && !podName.startsWith(rule.namePrefix))) continue;
      rule.remaining--;
      apply(rule.effect, rule);
    }
    this.#f.podRules = this.#f.podRules.filter((r) => r.remaining > 0);
  }

  snapshot(): FaultsSnapshot {
    return structuredClone(this.#f);
  }
}

export function podFaultParams(f: PodFaultParams): PodFaultParams {
  return { afterMs: f.afterMs, afterLogins: f.afterLogins, linkTarget: f.linkTarget, oversizeBytes: f.oversizeBytes };
}

function emptyFaults(): FaultsSnapshot {
  return {
    create5xx: [],
    storms: [],
    latency: [],
    insufficientBalance: false,
    forbiddenKeys: [],
    restrictedGpuTypes: [],
    rejectedCreates: [],
    staleCatalog: false,
    podRules: [],
  };
}

function takeMatching<T extends { remaining: number; method?: string; pathPrefix?: string }>(
  list: T[],
  method: string,
  path: string,
  store: (rest: T[]) => void,
): T | null {
  const hit = list.find(
    (f) =>
      f.remaining > 0 &&
      (f.method === undefined || f.method === method) &&
      (f.pathPrefix === undefined || path.startsWith(f.pathPrefix)),
  );
  if (!hit) return null;
  hit.remaining--;
  store(list.filter((f) => f.remaining > 0));
  return hit;
}

function toggle(list: string[], value: string, on: boolean): string[] {
  const rest = list.filter((v) => v !== value);
  return on ? [...rest, value] : rest;
}

function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
