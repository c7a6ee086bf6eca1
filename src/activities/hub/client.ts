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
  /**
   * One file of a repo at a revision (`/{repo}/resolve/{rev}/{path}`; LFS redirects followed), read-only.
   * @param revision branch, tag or commit sha (pass the commit from {@link modelInfo} to pin it)
   * @param opts.maxBytes refuse a larger body (checked on Content-Length, then while reading); default 64 MiB
   * @throws HubNotFoundError for 401/403/404, HubApiError otherwise (over the cap included)
   */
  fetchFile(
    repoId: string,
    revision: string,
    path: string,
    opts?: { signal?: AbortSignal; maxBytes?: number },
  ): Promise<Buffer>;
}

export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

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

  async fetchFile(
    repoId: string,
    revision: string,
    filePath: string,
    opts: { signal?: AbortSignal; maxBytes?: number } = {},
  ): Promise<Buffer> {
    const enc = (p: string) => p.split('/').map(encodeURIComponent).join('/');
    const path = `/${enc(repoId)}/resolve/${encodeURIComponent(revision)}/${enc(filePath)}`;
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    const signal = AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), ...(opts.signal ? [opts.signal] : [])]);
    let res: Response;
    try {
      res = await fetch(`${this.#baseUrl}${path}`, {
        headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
        signal,
      });
    } catch (err) {
      throw new HubApiError(`GET ${path}: ${(err as Error).message}`, null, path);
    }
    if (!res.ok) {
      const why = res.headers.get('x-error-message') ?? (await res.text()).slice(0, 300);
      const Err = [401, 403, 404].includes(res.status) ? HubNotFoundError : HubApiError;
      throw new Err(`GET ${path} -> HTTP ${res.status}: ${why}`, res.status, path);
    }
    const tooBig = () => new HubApiError(`GET ${path}: over the limit of ${maxBytes} bytes`, res.status, path);
    if (Number(res.headers.get('content-length') ?? 0) > maxBytes) {
      await res.body?.cancel();
      throw tooBig();
    }
    // Content-Length may be absent or wrong (chunked): count while reading, and stop at the cap.
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      if (res.body) {
        // Node's lib types the web stream's chunks as any; fetch gives bytes.
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          bytes += chunk.length;
          if (bytes > maxBytes) throw tooBig();
          chunks.push(Buffer.from(chunk));
        }
      }
    } catch (err) {
      if (err instanceof HubApiError) throw err;
      throw new HubApiError(`GET ${path}: ${(err as Error).message}`, res.status, path);
    }
    return Buffer.concat(chunks);
  }
}
