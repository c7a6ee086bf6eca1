// Per-API-key fixed windows with RateLimit / RateLimit-Policy headers (draft-ietf-httpapi-ratelimit-headers).

export interface RateLimitQuotas {
  /** Requests per 60 s window. Spec example default 60. */
  minute: number;
  /** Requests per 3600 s window. Spec example default 3000. */
  hour: number;
  /** Requests per 86400 s window. Spec example default 50000. */
  day: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitQuotas = { minute: 60, hour: 3000, day: 50_000 };

const WINDOWS = [
  { name: 'minute', seconds: 60 },
  { name: 'hour', seconds: 3_600 },
  { name: 'day', seconds: 86_400 },
] as const;

export type WindowName = (typeof WINDOWS)[number]['name'];

interface Bucket {
  used: number;
  resetAtMs: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  headers: Record<string, string>;
  /** When refused: the first exhausted window and its reset, in whole seconds. */
  exceeded?: { window: WindowName; retryAfterS: number };
}

/**
 * A `RateLimit` header with these windows reported exhausted (`r=0`, `t=resetS`) and every other item kept: what an
 * injected 429 says about the windows it pretends to have used up.
 */
export function withExhaustedWindows(header: string, exhausted: { window: WindowName; resetS: number }[]): string {
  const items = new Map<string, string>();
  for (const item of header.split(',')) {
    const name = /^\s*"([^"]+)"/.exec(item)?.[1];
    if (name) items.set(name, item.trim());
  }
  for (const e of exhausted) items.set(e.window, `"${e.window}";r=0;t=${e.resetS}`);
  return WINDOWS.map((w) => items.get(w.name))
    .filter((i) => i !== undefined)
    .join(', ');
}

export class RateLimiter {
  #quotas: RateLimitQuotas;
  readonly #buckets = new Map<string, Map<WindowName, Bucket>>();
  readonly #now: () => number;

  constructor(opts: { quotas?: Partial<RateLimitQuotas> | undefined; now?: () => number } = {}) {
    this.#quotas = { ...DEFAULT_RATE_LIMITS, ...opts.quotas };
    this.#now = opts.now ?? Date.now;
  }

  get quotas(): RateLimitQuotas {
    return { ...this.#quotas };
  }

  /** Changes quotas; with `reset`, forgets every key's usage. */
  configure(quotas: Partial<RateLimitQuotas>, opts: { reset?: boolean } = {}): void {
    this.#quotas = { ...this.#quotas, ...quotas };
    if (opts.reset) this.#buckets.clear();
  }

  /** Counts one request for `key` unless a window is exhausted; refused requests are not counted. */
  take(key: string): RateLimitDecision {
    const now = this.#now();
    let buckets = this.#buckets.get(key);
    if (!buckets) {
      buckets = new Map();
      this.#buckets.set(key, buckets);
    }
    for (const w of WINDOWS) {
      const b = buckets.get(w.name);
      if (!b || now >= b.resetAtMs) buckets.set(w.name, { used: 0, resetAtMs: now + w.seconds * 1000 });
    }
    const exhausted = WINDOWS.find((w) => (buckets.get(w.name) as Bucket).used >= this.#quotas[w.name]);
    if (!exhausted) for (const w of WINDOWS) (buckets.get(w.name) as Bucket).used++;
    const resetS = (w: WindowName): number =>
      Math.max(1, Math.ceil(((buckets.get(w) as Bucket).resetAtMs - now) / 1000));
    const headers = {
      'RateLimit-Policy': WINDOWS.map((w) => `"${w.name}";q=${this.#quotas[w.name]};w=${w.seconds}`).join(', '),
      RateLimit: WINDOWS.map(
        (w) =>
          `"${w.name}";r=${Math.max(0, this.#quotas[w.name] - (buckets.get(w.name) as Bucket).used)};t=${resetS(w.name)}`,
      ).join(', '),
    };
    if (!exhausted) return { allowed: true, headers };
    return { allowed: false, headers, exceeded: { window: exhausted.name, retryAfterS: resetS(exhausted.name) } };
  }
}
