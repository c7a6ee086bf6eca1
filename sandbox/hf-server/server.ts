// A Hugging Face Hub-compatible file server that the real `hf download` (huggingface_hub 1.17) accepts via HF_ENDPOINT.
// It speaks the plain-HTTP (non-Xet) protocol only: it never sends X-Xet-* headers or a `Link: ...xet-auth` header,
// so the client takes the `http_get` path with Range resume, whatever hf-xet is installed.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import {
  activateFaults,
  consumeFault,
  findFault,
  HfFaultListSchema,
  MODEL_INFO_FAULT_TARGET,
  type ActiveFault,
  type HfFault,
  type ParsedHfFault,
} from './faults.js';
import { buildHfRepo, DEFAULT_HF_MODEL_IDS, type HfModelSpec, type HfRepo, type HfRepoFile } from './models.js';

export interface StartHfServerOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Bind address; default 127.0.0.1. */
  host?: string;
  /** Repos to serve besides the defaults; a spec with a default repo's id replaces it. */
  models?: readonly HfModelSpec[];
  /** Serve the six Qwen3 stand-ins of {@link DEFAULT_HF_MODEL_IDS}; default true. */
  includeDefaultModels?: boolean;
  /** Shard count for default repos and specs that do not set one. */
  defaultShardCount?: number;
  /** Approximate tensor bytes per shard for default repos and specs that do not set one. */
  defaultShardBytes?: number;
  /** Faults active from the start. */
  faults?: readonly HfFault[];
  /** Called with one line per finished request (main.ts prints them). */
  log?: (line: string) => void;
}

export interface HfRequestLogEntry {
  method: string;
  /** Path and query as received. */
  path: string;
  /** Status sent; null while the headers are not out yet. */
  status: number | null;
  /** The request's Range header, if any. */
  range: string | null;
  /** Body bytes handed to the socket. */
  bytesSent: number;
  fault: ParsedHfFault['kind'] | null;
  startedAtMs: number;
  finishedAtMs: number | null;
  /** The connection closed before the response finished (stalls, truncations, killed clients). */
  aborted: boolean;
}

export interface HfServer {
  /** Base URL to put in HF_ENDPOINT, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  port: number;
  /** Every request so far, in arrival order; entries are updated in place as responses finish. */
  requests: readonly HfRequestLogEntry[];
  /** Replaces all faults (an empty list clears them). Responses already stalled stay stalled. */
  setFaults(faults: readonly HfFault[]): void;
  /** The active faults with their remaining use counts. */
  faults(): readonly ActiveFault[];
  /** The bearer token of the last request that carried one (tests check a token reached the Hub); null if none. */
  lastBearerToken(): string | null;
  repoIds(): string[];
  /** The generated repo (built on first use); undefined for unknown ids. */
  getRepo(repoId: string): HfRepo | undefined;
  /** Stops listening and destroys open connections, stalled ones included. */
  close(): Promise<void>;
}

const CHUNK_BYTES = 256 * 1024;

export async function startHfServer(options: StartHfServerOptions = {}): Promise<HfServer> {
  const specs = new Map<string, HfModelSpec>();
  if (options.includeDefaultModels ?? true) for (const repoId of DEFAULT_HF_MODEL_IDS) specs.set(repoId, { repoId });
  for (const spec of options.models ?? []) specs.set(spec.repoId, spec);
  const repos = new Map<string, HfRepo>();
  const getRepo = (repoId: string): HfRepo | undefined => {
    const spec = specs.get(repoId);
    if (spec === undefined) return undefined;
    let repo = repos.get(repoId);
    if (repo === undefined) {
      repo = buildHfRepo({
        ...spec,
        shardCount: spec.shardCount ?? options.defaultShardCount,
        shardBytes: spec.shardBytes ?? options.defaultShardBytes,
      });
      repos.set(repoId, repo);
    }
    return repo;
  };

  let active = activateFaults(options.faults ?? []);
  const requests: HfRequestLogEntry[] = [];
  let lastBearerToken: string | null = null;
  const ctx: Ctx = { getRepo, faults: () => active, setFaults: (f) => (active = activateFaults(f)), requests };

  const server = createServer((req, res) => {
    const entry: HfRequestLogEntry = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      status: null,
      range: req.headers.range ?? null,
      bytesSent: 0,
      fault: null,
      startedAtMs: Date.now(),
      finishedAtMs: null,
      aborted: false,
    };
    requests.push(entry);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (bearer?.[1]) lastBearerToken = bearer[1];
    res.on('close', () => {
      entry.finishedAtMs = Date.now();
      entry.status = res.headersSent ? res.statusCode : null;
      entry.aborted = !res.writableFinished;
      options.log?.(
        `${entry.method} ${entry.path} -> ${entry.status ?? '-'} ${entry.bytesSent}B` +
          `${entry.fault ? ` fault=${entry.fault}` : ''}${entry.aborted ? ' aborted' : ''}`,
      );
    });
    handle(ctx, req, res, entry).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    requests,
    setFaults: ctx.setFaults,
    faults: () => active,
    lastBearerToken: () => lastBearerToken,
    repoIds: () => [...specs.keys()],
    getRepo,
    close: () => closeServer(server),
  };
}

interface Ctx {
  getRepo: (repoId: string) => HfRepo | undefined;
  faults: () => readonly ActiveFault[];
  setFaults: (faults: readonly HfFault[]) => void;
  requests: readonly HfRequestLogEntry[];
}

async function handle(ctx: Ctx, req: IncomingMessage, res: ServerResponse, entry: HfRequestLogEntry): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
  const method = req.method ?? 'GET';
  let segments: string[];
  try {
    segments = url.pathname.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return sendJson(res, 400, { error: 'malformed percent-encoding in path' });
  }

  if (segments[0] === '_control') return handleControl(ctx, req, res, segments[1] ?? '');
  if (method !== 'GET' && method !== 'HEAD') return sendJson(res, 405, { error: `method ${method} not allowed` });

  if (segments[0] === 'api' && segments[1] === 'models' && segments.length >= 4) {
    const repoId = `${segments[2]}/${segments[3]}`;
    const rest = segments.slice(4);
    if (failWith5xx(ctx, res, entry, { repoId, file: MODEL_INFO_FAULT_TARGET, method })) return;
    if (rest.length === 0) return modelInfo(ctx, res, url, repoId, 'main');
    if (rest[0] === 'revision' && rest.length === 2) return modelInfo(ctx, res, url, repoId, rest[1] ?? '');
    if (rest[0] === 'tree' && rest.length >= 2)
      return repoTree(ctx, res, repoId, rest[1] ?? '', rest.slice(2).join('/'));
    return sendJson(res, 404, { error: 'Not Found' });
  }

  // The CDN stand-in that LFS redirects point at: /_lfs/{owner}/{name}/{commit}/{path...}
  if (segments[0] === '_lfs' && segments.length >= 5) {
    const repoId = `${segments[1]}/${segments[2]}`;
    const repo = ctx.getRepo(repoId);
    const file =
      repo !== undefined && repo.commitSha === segments[3] ? findFile(repo, segments.slice(4).join('/')) : undefined;
    if (repo === undefined || file === undefined) return sendJson(res, 404, { error: 'Not Found' });
    if (failWith5xx(ctx, res, entry, { repoId, file: file.path, method })) return;
    return serveFile(ctx, req, res, entry, { repo, file, etag: file.sha256, withRepoCommit: false });
  }

  // /{owner}/{name}/resolve/{revision}/{path...}
  if (segments.length >= 5 && segments[2] === 'resolve') {
    const repoId = `${segments[0]}/${segments[1]}`;
    const resolved = resolveRevision(ctx, res, repoId, segments[3] ?? '');
    if (resolved === undefined) return;
    const path = segments.slice(4).join('/');
    const file = findFile(resolved, path);
    if (file === undefined) {
      // X-Repo-Commit on the 404 lets the client cache the file's absence (`.no_exist`).
      return sendError(res, 404, 'EntryNotFound', `${path} does not exist on "${segments[3]}"`, {
        'X-Repo-Commit': resolved.commitSha,
      });
    }
    if (failWith5xx(ctx, res, entry, { repoId, file: file.path, method })) return;
    if (file.lfs === null) return serveFile(ctx, req, res, entry, { repo: resolved, file, etag: file.gitOid });
    return redirectToLfs(ctx, req, res, resolved, file);
  }

  return sendJson(res, 404, { error: 'Not Found' });
}

async function handleControl(ctx: Ctx, req: IncomingMessage, res: ServerResponse, what: string): Promise<void> {
  if (what === 'faults' && req.method === 'GET') return sendJson(res, 200, { faults: ctx.faults() });
  if (what === 'faults' && req.method === 'POST') {
    const parsed = HfFaultListSchema.safeParse(await readJson(req));
    if (!parsed.success) return sendJson(res, 400, { error: z.prettifyError(parsed.error) });
    ctx.setFaults(parsed.data.faults);
    return sendJson(res, 200, { faults: ctx.faults() });
  }
  if (what === 'requests' && req.method === 'GET') return sendJson(res, 200, { requests: ctx.requests });
  return sendJson(res, 404, { error: `unknown control route ${req.method} /_control/${what}` });
}

function resolveRevision(ctx: Ctx, res: ServerResponse, repoId: string, revision: string): HfRepo | undefined {
  const repo = ctx.getRepo(repoId);
  if (repo === undefined) {
    sendError(res, 404, 'RepoNotFound', 'Repository not found');
    return undefined;
  }
  // Each stand-in has one commit; `main` points at it, like a branch would.
  if (revision !== repo.commitSha && revision !== 'main') {
    sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    return undefined;
  }
  return repo;
}

function findFile(repo: HfRepo, path: string): HfRepoFile | undefined {
  return repo.files.find((f) => f.path === path);
}

function modelInfo(ctx: Ctx, res: ServerResponse, url: URL, repoId: string, revision: string): void {
  const repo = resolveRevision(ctx, res, repoId, revision);
  if (repo === undefined) return;
  // Like the Hub: sizes, blob ids and LFS info only with ?blobs=true (what `files_metadata=True` sends).
  const blobs = ['true', '1'].includes((url.searchParams.get('blobs') ?? '').toLowerCase());
  const config = JSON.parse(findFile(repo, 'config.json')?.bytes.toString('utf8') ?? '{}') as Record<string, unknown>;
  const modelType = typeof config.model_type === 'string' ? config.model_type : 'qwen3';
  const info: Record<string, unknown> = {
    _id: repo.commitSha.slice(0, 24),
    id: repo.repoId,
    modelId: repo.repoId,
    author: repo.repoId.split('/')[0],
    sha: repo.commitSha,
    lastModified: '2025-07-30T00:00:00.000Z',
    createdAt: '2025-07-21T00:00:00.000Z',
    private: false,
    disabled: false,
    gated: false,
    downloads: 0,
    likes: 0,
    library_name: 'transformers',
    pipeline_tag: 'text-generation',
    tags: ['transformers', 'safetensors', modelType, 'text-generation', 'conversational'],
    config: { architectures: config.architectures, model_type: config.model_type },
    cardData: { library_name: 'transformers', license: 'apache-2.0', pipeline_tag: 'text-generation' },
    siblings: repo.files.map((f) =>
      blobs
        ? {
            rfilename: f.path,
            size: f.sizeBytes,
            blobId: f.gitOid,
            ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.sizeBytes, pointerSize: f.lfs.pointerSizeBytes } } : {}),
          }
        : { rfilename: f.path },
    ),
    spaces: [],
    safetensors: { parameters: { BF16: repo.parameterCount }, total: repo.parameterCount },
    usedStorage: repo.files.reduce((acc, f) => acc + f.sizeBytes, 0),
  };
  // ?expand=a&expand=b returns only those properties (plus the ids), as on the Hub.
  const expand = [...url.searchParams.getAll('expand'), ...url.searchParams.getAll('expand[]')];
  const body =
    expand.length === 0
      ? info
      : Object.fromEntries(Object.entries(info).filter(([k]) => k === '_id' || k === 'id' || expand.includes(k)));
  sendJson(res, 200, body);
}

function repoTree(ctx: Ctx, res: ServerResponse, repoId: string, revision: string, prefix: string): void {
  const repo = resolveRevision(ctx, res, repoId, revision);
  if (repo === undefined) return;
  const files = repo.files.filter((f) => prefix === '' || f.path.startsWith(`${prefix}/`));
  sendJson(
    res,
    200,
    files.map((f) => ({
      type: 'file',
      oid: f.gitOid,
      size: f.sizeBytes,
      path: f.path,
      ...(f.lfs ? { lfs: { oid: f.sha256, size: f.sizeBytes, pointerSize: f.lfs.pointerSizeBytes } } : {}),
    })),
  );
}

// The Hub answers /resolve for an LFS file with a 302 to its CDN. The client reads X-Linked-Size / X-Linked-Etag
// from the HEAD (they win over Content-Length / ETag, which describe the redirect), then GETs the Location itself.
function redirectToLfs(ctx: Ctx, req: IncomingMessage, res: ServerResponse, repo: HfRepo, file: HfRepoFile): void {
  const served = effectiveBytes(ctx, repo, file, req.method ?? 'GET', false);
  const origin = `http://${req.headers.host ?? '127.0.0.1'}`;
  const location = `${origin}/_lfs/${repo.repoId}/${repo.commitSha}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
  const body = Buffer.from(`Found. Redirecting to ${location}`);
  res.writeHead(302, {
    Location: location,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': body.length,
    ETag: `"${file.sha256}"`,
    'X-Repo-Commit': repo.commitSha,
    'X-Linked-Size': served.length,
    'X-Linked-Etag': `"${file.sha256}"`,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function serveFile(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  entry: HfRequestLogEntry,
  args: { repo: HfRepo; file: HfRepoFile; etag: string; withRepoCommit?: boolean },
): Promise<void> | void {
  const { repo, file } = args;
  const method = req.method ?? 'GET';
  const isGet = method === 'GET';
  const bytes = effectiveBytes(ctx, repo, file, method, true, entry);
  const totalBytes = bytes.length;

  const range = parseRange(req.headers.range, totalBytes);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${totalBytes}`, 'Content-Length': 0 });
    res.end();
    return;
  }
  const start = range?.start ?? 0;
  const endExclusive = range ? range.end + 1 : totalBytes;
  const headers: Record<string, string | number> = {
    'Content-Type': contentTypeFor(file.path),
    'Content-Length': endExclusive - start,
    'Accept-Ranges': 'bytes',
    ETag: `"${args.etag}"`,
    'Content-Disposition': `inline; filename*=UTF-8''${encodeURIComponent(baseName(file.path))}; filename="${baseName(file.path)}";`,
  };
  if (args.withRepoCommit ?? true) headers['X-Repo-Commit'] = repo.commitSha;
  if (range) headers['Content-Range'] = `bytes ${start}-${endExclusive - 1}/${totalBytes}`;
  res.writeHead(range ? 206 : 200, headers);
  if (!isGet) {
    res.end();
    return;
  }

  const stall = findFault(ctx.faults(), { kind: 'stall', repoId: repo.repoId, file: file.path, method });
  if (stall) {
    consumeFault(stall);
    entry.fault = 'stall';
    // Send what lies before afterBytes, then hold the connection open; the client's read timeout (or kill) ends it.
    return writeRange(res, entry, bytes, start, Math.max(start, Math.min(endExclusive, stall.fault.afterBytes))).then(
      () => undefined,
    );
  }
  const cut = findFault(ctx.faults(), { kind: 'truncate', repoId: repo.repoId, file: file.path, method });
  if (cut?.fault.mode === 'close-early') {
    consumeFault(cut);
    entry.fault = 'truncate';
    const stopAt = Math.max(start, Math.min(endExclusive, cut.fault.keepBytes));
    return writeRange(res, entry, bytes, start, stopAt).then(() => {
      // end() on the socket flushes what was written, then FINs: the client sees a body shorter than Content-Length.
      res.socket?.end();
    });
  }
  return writeRange(res, entry, bytes, start, endExclusive).then((ok) => {
    if (ok) res.end();
  });
}

// A `short-file` truncate fault makes the server treat a prefix of the file as the whole file, for HEAD and GET.
function effectiveBytes(
  ctx: Ctx,
  repo: HfRepo,
  file: HfRepoFile,
  method: string,
  consume: boolean,
  entry?: HfRequestLogEntry,
): Buffer {
  const cut = findFault(ctx.faults(), { kind: 'truncate', repoId: repo.repoId, file: file.path, method });
  if (cut?.fault.mode !== 'short-file') return file.bytes;
  if (consume && method === 'GET') {
    consumeFault(cut);
    if (entry) entry.fault = 'truncate';
  }
  return file.bytes.subarray(0, Math.min(file.bytes.length, cut.fault.keepBytes));
}

function failWith5xx(
  ctx: Ctx,
  res: ServerResponse,
  entry: HfRequestLogEntry,
  query: { repoId: string; file: string; method: string },
): boolean {
  const hit = findFault(ctx.faults(), { kind: 'error5xx', ...query });
  if (!hit) return false;
  consumeFault(hit);
  entry.fault = 'error5xx';
  const message = hit.fault.message ?? 'Internal Error - We are working hard to fix this as soon as possible!';
  sendJson(res, hit.fault.status, { error: message });
  return true;
}

async function writeRange(
  res: ServerResponse,
  entry: HfRequestLogEntry,
  bytes: Buffer,
  start: number,
  endExclusive: number,
): Promise<boolean> {
  for (let pos = start; pos < endExclusive;) {
    if (res.destroyed) return false;
    const chunk = bytes.subarray(pos, Math.min(endExclusive, pos + CHUNK_BYTES));
    pos += chunk.length;
    entry.bytesSent += chunk.length;
    if (!res.write(chunk) && !(await drained(res))) return false;
  }
  return !res.destroyed;
}

function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** `bytes=a-b`, `bytes=a-` and `bytes=-n`; anything else (multi-range, junk) is ignored like many CDNs do. */
function parseRange(
  header: string | undefined,
  totalBytes: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, totalBytes - suffix), end: totalBytes - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? totalBytes - 1 : Math.min(Number(m[2]), totalBytes - 1);
  if (start >= totalBytes || end < start) return 'unsatisfiable';
  return { start, end };
}

function sendError(
  res: ServerResponse,
  status: number,
  errorCode: string,
  message: string,
  extra: Record<string, string> = {},
): void {
  // huggingface_hub maps X-Error-Code to RepositoryNotFoundError / RevisionNotFoundError / RemoteEntryNotFoundError.
  sendJson(res, status, { error: message }, { 'X-Error-Code': errorCode, 'X-Error-Message': message, ...extra });
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': buf.length, ...extra });
  res.end(buf);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function contentTypeFor(path: string): string {
  if (path.endsWith('.json')) return 'application/json; charset=utf-8';
  if (path.endsWith('.md') || path.endsWith('.txt') || !path.includes('.') || path.startsWith('.')) {
    return 'text/plain; charset=utf-8';
  }
  return 'application/octet-stream';
}

function baseName(path: string): string {
  return path.split('/').pop() ?? path;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}
