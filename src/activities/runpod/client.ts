// RunPod REST v2 client: pods only, global fetch, typed errors, no retries (Temporal owns retries) except waiting out
// a 429 on a read or a delete.
import type { z } from 'zod';
import {
  RunPodApiError,
  RunPodNetworkError,
  RunPodProtocolError,
  RunPodRateLimitedError,
  RunPodTimeoutError,
  classifyHttpError,
} from './errors.js';
import { GpuTypeSchema, ListPodsResponseSchema, PodSchema, ProblemSchema, V1ErrorSchema } from './schemas.js';
import type { CreatePodRequest, GpuType, Pod } from './schemas.js';

/** Per-call options. */
export interface RunPodRequestOptions {
  /** Aborts the call (e.g. the activity's `cancellationSignal()`); the abort reason is rethrown as is. */
  signal?: AbortSignal;
}

export interface ListPodsOptions extends RunPodRequestOptions {
  /** Page size sent as `limit` (1-1000); omitted means the server default (1000). */
  pageSize?: number;
  /** Also list cluster members (hidden by default). */
  includeClusterPods?: boolean;
}

/** What the activities depend on; tests and other transports implement it too. */
export interface RunPodApi {
  createPod(request: CreatePodRequest, options?: RunPodRequestOptions): Promise<Pod>;
  getPod(podId: string, options?: RunPodRequestOptions): Promise<Pod | null>;
  listPods(options?: ListPodsOptions): Promise<Pod[]>;
  deletePod(podId: string, options?: RunPodRequestOptions): Promise<boolean>;
  findPodsByNamePrefix(prefix: string, options?: ListPodsOptions): Promise<Pod[]>;
  findPodByName(name: string, options?: ListPodsOptions): Promise<Pod | null>;
  /** The catalog entry of one GPU type (`GET /catalog/gpus/{id}`), or null when RunPod does not know it. */
  getGpuType(gpuTypeId: string, options?: RunPodRequestOptions): Promise<GpuType | null>;
  /** Stops (compute released, volume kept) or starts a pod (`POST /pods/{id}/action`). */
  podAction(podId: string, action: 'start' | 'stop', options?: RunPodRequestOptions): Promise<Pod>;
  /** Renames a pod (`PATCH /pods/{id}` with `name` only: nothing the container runs changes). */
  renamePod(podId: string, name: string, options?: RunPodRequestOptions): Promise<Pod>;
}

export interface RunPodClientOptions {
  apiKey: string;
  /** Base URL including `/v2`. Default `https://api.runpod.io/v2`. */
  baseUrl?: string;
  /** Deadline for one HTTP exchange, body included, in ms. Default 30 000. */
  timeoutMs?: number;
  /**
   * Time budget of one GET or DELETE for waiting out 429s, in ms: each wait is the larger of `Retry-After` and the
   * reset of every exhausted `RateLimit` window, and a wait that would end past the budget fails at once with
   * RunPodRateLimitedError. POSTs are never repeated. Default 30 000.
   */
  maxRetryAfterMs?: number;
  /** Transport seam; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export const DEFAULT_RUNPOD_BASE_URL = 'https://api.runpod.io/v2';
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRY_AFTER_MS = 30_000;
// A 429 comes before RunPod does anything, and these are idempotent: repeating one is safe. A POST never is repeated.
const REPEATED_ON_429: ReadonlySet<string> = new Set(['GET', 'DELETE']);
// A server that keeps handing out cursors must not loop us for ever.
const MAX_PAGES = 10_000;

interface RequestArgs<T> {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  schema?: z.ZodType<T>;
  signal?: AbortSignal | undefined;
}

interface Response<T> {
  status: number;
  data: T | undefined;
}

export class RunPodClient implements RunPodApi {
  readonly #apiKey: string;
  readonly #baseUrl: string;
  readonly #timeoutMs: number;
  readonly #maxRetryAfterMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: RunPodClientOptions) {
    if (!options.apiKey) throw new TypeError('RunPodClient: apiKey is required');
    this.#apiKey = options.apiKey;
    this.#baseUrl = (options.baseUrl ?? DEFAULT_RUNPOD_BASE_URL).replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /**
   * Creates a pod (`POST /pods`). Never retried here: after a 5xx or a timeout the pod may exist, so look it
   * up with {@link findPodByName} before creating again.
   * @param request the create body; `name` should carry a unique token.
   * @returns the pod as created (status PROVISIONING or already RUNNING, without ports).
   * @throws RunPodNoCapacityError, RunPodValidationError, RunPodInsufficientBalanceError, RunPodApiError, …
   */
  async createPod(request: CreatePodRequest, options: RunPodRequestOptions = {}): Promise<Pod> {
    const res = await this.#request({ method: 'POST', path: '/pods', body: request, schema: PodSchema, ...options });
    return this.#required(res, 'POST', '/pods');
  }

  /**
   * Reads one pod (`GET /pods/{id}`).
   * @returns the pod, or null when RunPod answers 404 (terminated, vanished or never existed).
   */
  async getPod(podId: string, options: RunPodRequestOptions = {}): Promise<Pod | null> {
    const path = `/pods/${encodeURIComponent(podId)}`;
    try {
      const res = await this.#request({ method: 'GET', path, schema: PodSchema, ...options });
      return this.#required(res, 'GET', path);
    } catch (err) {
      if (err instanceof RunPodApiError && err.status === 404) return null;
      throw err;
    }
  }

  async getGpuType(gpuTypeId: string, options: RunPodRequestOptions = {}): Promise<GpuType | null> {
    const path = `/catalog/gpus/${encodeURIComponent(gpuTypeId)}`;
    try {
      const res = await this.#request({ method: 'GET', path, schema: GpuTypeSchema, ...options });
      return this.#required(res, 'GET', path);
    } catch (err) {
      if (err instanceof RunPodApiError && err.status === 404) return null;
      throw err;
    }
  }

  /**
   * Lists every pod (`GET /pods`), following cursor pagination to the end. A response without
   * `pagination` (spec 2.9) is the last page. Newest first.
   */
  async listPods(options: ListPodsOptions = {}): Promise<Pod[]> {
    const pods: Pod[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await this.#request({
        method: 'GET',
        path: '/pods',
        query: {
          limit: options.pageSize === undefined ? undefined : String(options.pageSize),
          cursor,
          includeClusterPods: options.includeClusterPods ? 'true' : undefined,
        },
        schema: ListPodsResponseSchema,
        signal: options.signal,
      });
      const body = this.#required(res, 'GET', '/pods');
      pods.push(...body.pods);
      const next = body.pagination?.hasNextPage ? body.pagination.nextCursor : undefined;
      if (!next) return pods;
      if (seen.has(next)) throw new RunPodProtocolError('GET /pods returned the same cursor twice', { path: '/pods' });
      seen.add(next);
      cursor = next;
    }
    throw new RunPodProtocolError(`GET /pods: more than ${MAX_PAGES} pages`, { path: '/pods' });
  }

  /**
   * Terminates a pod (`DELETE /pods/{id}`). Idempotent: a 404 means it is already gone.
   * @returns true when the pod existed and was terminated now, false when it was already gone.
   */
  async deletePod(podId: string, options: RunPodRequestOptions = {}): Promise<boolean> {
    const path = `/pods/${encodeURIComponent(podId)}`;
    try {
      await this.#request({ method: 'DELETE', path, ...options });
      return true;
    } catch (err) {
      if (err instanceof RunPodApiError && err.status === 404) return false;
      throw err;
    }
  }

  async podAction(podId: string, action: 'start' | 'stop', options: RunPodRequestOptions = {}): Promise<Pod> {
    const path = `/pods/${encodeURIComponent(podId)}/action`;
    const res = await this.#request({ method: 'POST', path, body: { action }, schema: PodSchema, ...options });
    return this.#required(res, 'POST', path);
  }

  async renamePod(podId: string, name: string, options: RunPodRequestOptions = {}): Promise<Pod> {
    const path = `/pods/${encodeURIComponent(podId)}`;
    const res = await this.#request({ method: 'PATCH', path, body: { name }, schema: PodSchema, ...options });
    return this.#required(res, 'PATCH', path);
  }

  /** All pods whose name starts with `prefix`, newest first. v2 has no server-side filter, so this lists everything. */
  async findPodsByNamePrefix(prefix: string, options: ListPodsOptions = {}): Promise<Pod[]> {
    return (await this.listPods(options)).filter((p) => p.name.startsWith(prefix));
  }

  /**
   * The newest pod named exactly `name`, or null. Names are not unique on RunPod; callers that put a unique
   * token in the name (see createPod) get at most one.
   */
  async findPodByName(name: string, options: ListPodsOptions = {}): Promise<Pod | null> {
    return (await this.listPods(options)).find((p) => p.name === name) ?? null;
  }

  #required<T>(res: Response<T>, method: string, path: string): T {
    if (res.data === undefined) {
      throw new RunPodProtocolError(`${method} ${path}: ${res.status} with an empty body`, {
        status: res.status,
        method,
        path,
      });
    }
    return res.data;
  }

  async #request<T>(args: RequestArgs<T>): Promise<Response<T>> {
    const budgetEndsAt = Date.now() + this.#maxRetryAfterMs;
    for (;;) {
      try {
        return await this.#once(args);
      } catch (err) {
        if (!(err instanceof RunPodRateLimitedError) || !REPEATED_ON_429.has(args.method)) throw err;
        if (Date.now() + err.waitMs > budgetEndsAt) throw err;
        await sleepMs(err.waitMs, args.signal);
      }
    }
  }

  async #once<T>(args: RequestArgs<T>): Promise<Response<T>> {
    const { method, path, signal } = args;
    const url = new URL(this.#baseUrl + path);
    for (const [k, v] of Object.entries(args.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#apiKey}`,
      accept: 'application/json, application/problem+json',
    };
    if (args.body !== undefined) headers['content-type'] = 'application/json';

    let status: number;
    let text: string;
    let requestId: string | undefined;
    let retryAfter: string | null;
    let rateLimit: string | null;
    try {
      const res = await this.#fetch(url, {
        method,
        headers,
        body: args.body === undefined ? undefined : JSON.stringify(args.body),
        signal: combined,
      });
      status = res.status;
      requestId = res.headers.get('x-request-id') ?? undefined;
      retryAfter = res.headers.get('retry-after');
      rateLimit = res.headers.get('ratelimit');
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const ctx = { status: null, method, path, cause: err };
      if (timeout.aborted) throw new RunPodTimeoutError({ ...ctx, detail: `no response within ${this.#timeoutMs} ms` });
      throw new RunPodNetworkError({ ...ctx, detail: errorText(err) });
    }

    if (status >= 200 && status < 300) {
      if (!args.schema || text.trim() === '') return { status, data: undefined };
      const parsed = args.schema.safeParse(parseJson(text));
      if (!parsed.success) {
        throw new RunPodProtocolError(`${method} ${path}: unexpected response body: ${parsed.error.message}`, {
          status,
          method,
          path,
          cause: parsed.error,
        });
      }
      return { status, data: parsed.data };
    }
    throw classifyHttpError(
      { status, method, path, requestId, ...problemOf(text, status) },
      { retryAfterS: parseRetryAfterS(retryAfter), exhaustedResetS: parseExhaustedResetS(rateLimit) },
    );
  }
}

function problemOf(text: string, status: number): { detail: string; title?: string; errors?: string[] } {
  const json = parseJson(text);
  const problem = ProblemSchema.safeParse(json);
  if (problem.success && (problem.data.detail !== undefined || problem.data.title !== undefined)) {
    return {
      detail: problem.data.detail ?? problem.data.title ?? `HTTP ${status}`,
      title: problem.data.title,
      errors: problem.data.errors,
    };
  }
  // A v1-shaped body means the base URL points at v1; keep the text so the message says so.
  const v1 = V1ErrorSchema.safeParse(json);
  if (v1.success) return { detail: `${v1.data.error} (v1-shaped error body: is baseUrl a v1 host?)` };
  return { detail: text.trim().slice(0, 500) || `HTTP ${status}` };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `Retry-After` is integer seconds per the spec; an HTTP date is tolerated. */
function parseRetryAfterS(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return s;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * The latest reset among the windows of a `RateLimit` header that have nothing left, in seconds, or undefined.
 * The header is a structured-field list (draft-ietf-httpapi-ratelimit-headers): `"minute";r=0;t=12, "hour";r=2800;t=1812`.
 */
function parseExhaustedResetS(header: string | null): number | undefined {
  if (!header) return undefined;
  let latest: number | undefined;
  for (const item of header.split(',')) {
    const remaining = intParam(item, /;\s*r\s*=\s*(\d+)/);
    const resetS = intParam(item, /;\s*t\s*=\s*(\d+)/);
    if (remaining === 0 && resetS !== undefined) latest = Math.max(latest ?? 0, resetS);
  }
  return latest;
}

function intParam(item: string, pattern: RegExp): number | undefined {
  const m = pattern.exec(item)?.[1];
  return m === undefined ? undefined : Number(m);
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici hides the socket error (ECONNREFUSED, …) in `cause`.
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

function sleepMs(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
