// Hugging Face Hub REST API client (model metadata only), over fetch; the token stays in the worker.
import { HubApiError, HubNotFoundError } from './errors.js';
import { ModelInfoSchema, type ModelInfo } from './schemas.js';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface HubApi {
  /**
   * A repo's files at a revision, with sizes and LFS sha256s.
   * @param repoId `owner/name`
   * @param revision branch, tag or commit sha
   * @throws HubNotFoundError for 401/403/404, HubApiError otherwise
   */
  modelInfo(repoId: string, revision: string, opts?: { signal?: AbortSignal }): Promise<ModelInfo>;
}

export class HubClient implements HubApi {
  readonly #baseUrl: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  /**
   * @param opts.baseUrl the Hub (HF_ENDPOINT), default huggingface.co
   * @param opts.token HF_TOKEN; sent only as a bearer header
   * @param opts.timeoutMs per request, default 30 s
   */
  constructor(opts: { baseUrl?: string; token?: string; timeoutMs?: number } = {}) {
    this.#baseUrl = (opts.baseUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
    this.#token = opts.token;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async modelInfo(repoId: string, revision: string, opts: { signal?: AbortSignal } = {}): Promise<ModelInfo> {
    const path = `/api/models/${repoId.split('/').map(encodeURIComponent).join('/')}/revision/${encodeURIComponent(revision)}?blobs=true`;
    const signal = AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), ...(opts.signal ? [opts.signal] : [])]);
    let res: Response;
    try {
      res = await fetch(`${this.#baseUrl}${path}`, {
        headers: { accept: 'application/json', ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}) },
        signal,
      });
    } catch (err) {
      throw new HubApiError(`GET ${path}: ${(err as Error).message}`, null, path);
    }
    const text = await res.text();
    if (!res.ok) {
      // The Hub answers 401 for a private or missing repo without a token, 404 for a missing revision.
      const why = res.headers.get('x-error-message') ?? text.slice(0, 300);
      const Err = [401, 403, 404].includes(res.status) ? HubNotFoundError : HubApiError;
      throw new Err(`GET ${path} -> HTTP ${res.status}: ${why}`, res.status, path);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HubApiError(`GET ${path}: not JSON: ${text.slice(0, 200)}`, res.status, path);
    }
    const parsed = ModelInfoSchema.safeParse(body);
    if (!parsed.success)
      throw new HubApiError(`GET ${path}: unexpected model info: ${parsed.error.message}`, res.status, path);
    return parsed.data;
  }
}
