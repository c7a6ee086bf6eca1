// node:http front of the emulator: body limit, auth, rate limits, faults, routing, problem+json replies,
// and the unauthenticated `/_control/*` API.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { CapacityUpdateSchema, FaultsBodySchema, RateLimitsUpdateSchema } from './control.js';
import type { ParsedFault } from './control.js';
import { openApiStub } from './openapi.js';
import { ProblemError } from './problems.js';
import { withExhaustedWindows } from './rate-limit.js';
import type { RateLimiter } from './rate-limit.js';
import type { EmulatorState } from './state.js';

/** Request bodies above this are refused with 413 before auth ([SPEC-NEWER]). */
export const MAX_BODY_BYTES = 102_400;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Ctx {
  params: string[];
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Parsed JSON body; throws a 400 problem when it is not JSON. */
  json(): unknown;
}

interface Reply {
  status: number;
  body?: unknown;
  /** Raw text body with its own content type (SSE). */
  text?: string;
  contentType?: string;
}

type Handler = (ctx: Ctx) => Reply | Promise<Reply>;

interface Route {
  segments: string[];
  methods: Partial<Record<Method, Handler>>;
}

export interface ServerDeps {
  state: EmulatorState;
  rateLimiter: RateLimiter;
  /** Accepted API keys; null accepts any non-empty bearer token. */
  apiKeys: Set<string> | null;
  /** Unrouted /v2 paths: 404 (default) or the beta host's 422 "GET Path ... not found". */
  unknownRoute: 'not-found' | 'beta-422';
  /** The `/v2` base URL, for the openapi stub. */
  baseUrl: () => string;
  snapshot: () => unknown;
  applyFault: (fault: ParsedFault) => void;
  log: (line: string) => void;
}

const ok = (body: unknown): Reply => ({ status: 200, body });

export function createRequestHandler(deps: ServerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { state } = deps;
  const routes: Route[] = [
    {
      segments: ['pods'],
      methods: {
        GET: (c) => ok(state.listPods(c.query)),
        POST: async (c) => ({ status: 201, body: await state.createPod(c.json()) }),
      },
    },
    {
      segments: ['pods', ':id'],
      methods: {
        GET: (c) => ok(state.getPod(param(c, 0))),
        PATCH: async (c) => ok(await state.patchPod(param(c, 0), c.json())),
        DELETE: async (c) => {
          await state.deletePod(param(c, 0));
          return { status: 204 };
        },
      },
    },
    {
      segments: ['pods', ':id', 'action'],
      methods: {
        POST: async (c) => {
          const pod = await state.podAction(param(c, 0), c.json());
          return pod === undefined ? { status: 204 } : ok(pod);
        },
      },
    },
    {
      segments: ['pods', ':id', 'logs'],
      methods: {
        GET: (c) => {
          const last = c.headers['last-event-id'];
          const text = state.podLogs(param(c, 0), c.query, Array.isArray(last) ? last[0] : last);
          return { status: 200, text, contentType: 'text/event-stream' };
        },
      },
    },
    {
      segments: ['account', 'ssh-keys'],
      methods: { GET: () => ok(state.getSshKeys()), PUT: (c) => ok(state.putSshKeys(c.json())) },
    },
    { segments: ['catalog', 'gpus'], methods: { GET: (c) => ok(state.catalog.gpuCatalog(c.query)) } },
    {
      segments: ['catalog', 'gpus', ':id'],
      methods: { GET: (c) => ok(state.catalog.gpuCatalog(c.query, param(c, 0))) },
    },
    { segments: ['catalog', 'cpus'], methods: { GET: (c) => ok(state.catalog.cpuCatalog(c.query)) } },
    {
      segments: ['catalog', 'cpus', ':id'],
      methods: { GET: (c) => ok(state.catalog.cpuCatalog(c.query, param(c, 0))) },
    },
    { segments: ['catalog', 'datacenters'], methods: { GET: (c) => ok(state.catalog.dataCenterCatalog(c.query)) } },
    {
      segments: ['catalog', 'datacenters', ':id'],
      methods: { GET: (c) => ok(state.catalog.dataCenterCatalog(c.query, param(c, 0))) },
    },
  ];

  const controlRoutes: Route[] = [
    { segments: ['state'], methods: { GET: () => ok(deps.snapshot()) } },
    {
      segments: ['capacity'],
      methods: {
        GET: () => ok({ cells: state.catalog.capacity() }),
        POST: (c) => {
          const update = parseControl(CapacityUpdateSchema, c.json());
          try {
            state.setCapacity(update);
          } catch (err) {
            throw new ProblemError(400, err instanceof Error ? err.message : String(err));
          }
          return ok({ cells: state.catalog.capacity() });
        },
      },
    },
    {
      segments: ['faults'],
      methods: {
        GET: () => ok(state.faults()),
        POST: (c) => {
          const body = parseControl(FaultsBodySchema, c.json());
          for (const f of 'faults' in body ? body.faults : [body]) {
            try {
              deps.applyFault(f);
            } catch (err) {
              throw new ProblemError(400, err instanceof Error ? err.message : String(err));
            }
          }
          return ok(state.faults());
        },
        DELETE: () => {
          deps.applyFault({ type: 'clear' });
          return ok(state.faults());
        },
      },
    },
    {
      segments: ['rate-limits'],
      methods: {
        GET: () => ok(deps.rateLimiter.quotas),
        POST: (c) => {
          const { reset, ...quotas } = parseControl(RateLimitsUpdateSchema, c.json());
          deps.rateLimiter.configure(stripUndefined(quotas), { reset });
          return ok(deps.rateLimiter.quotas);
        },
      },
    },
  ];

  return (req, res) => {
    const requestId = randomUUID();
    res.setHeader('x-request-id', requestId);
    handle(req, res, deps, routes, controlRoutes).catch((err: unknown) => {
      deps.log(`unhandled error on ${req.method} ${req.url}: ${String(err)}`);
      if (!res.headersSent) send(res, problemReply(new ProblemError(500, 'internal error')));
      else res.destroy();
    });
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  deps: ServerDeps,
  routes: Route[],
  controlRoutes: Route[],
): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  const url = new URL(req.url ?? '/', 'http://emulator.invalid');
  const extraHeaders: Record<string, string> = {};
  const finish = (reply: Reply, record?: string): void => {
    send(res, reply, extraHeaders);
    if (record !== undefined) deps.state.recordCall({ method, path: record, status: reply.status });
  };

  // 413 comes before auth, so the limit applies even to anonymous requests.
  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === null) {
    res.setHeader('connection', 'close');
    finish(problemReply(new ProblemError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`)));
    return;
  }
  const ctxFor = (params: string[]): Ctx => ({
    params,
    query: url.searchParams,
    headers: req.headers,
    json: () => {
      if (body.trim() === '') return undefined;
      try {
        return JSON.parse(body) as unknown;
      } catch {
        throw new ProblemError(400, 'request body is not valid JSON');
      }
    },
  });
  const run = async (handler: Handler, params: string[]): Promise<Reply> => {
    try {
      return await handler(ctxFor(params));
    } catch (err) {
      if (err instanceof ProblemError) {
        Object.assign(extraHeaders, err.headers);
        return problemReply(err);
      }
      deps.log(
        `handler error on ${method} ${url.pathname}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      return problemReply(new ProblemError(500, 'internal error'));
    }
  };

  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (path === '/_control' || path.startsWith('/_control/')) {
    const found = match(controlRoutes, path.slice('/_control'.length));
    if (!found) return finish(problemReply(new ProblemError(404, 'control route not found')));
    const handler = found.route.methods[method as Method];
    if (!handler) return finish(methodNotAllowed(found.route, extraHeaders));
    return finish(await run(handler, found.params));
  }
  if (path !== '/v2' && !path.startsWith('/v2/')) {
    return finish(problemReply(new ProblemError(404, `${method} Path ${path} not found`)));
  }
  const sub = path.slice('/v2'.length);
  // The spec document is public (the docs fetch it without a key).
  if (sub === '/openapi.json') {
    if (method !== 'GET')
      return finish(methodNotAllowed({ segments: [], methods: { GET: () => ok(null) } }, extraHeaders));
    return finish(ok(openApiStub(deps.baseUrl().replace(/\/v2$/, ''))));
  }

  // Auth: 401 carries no RateLimit headers.
  const auth = req.headers.authorization;
  const token = auth?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (!token) return finish(problemReply(new ProblemError(401, 'missing bearer token')), sub);
  // A pod's own key (its RUNPOD_API_KEY) is valid, but only for that pod: see podKeyAllows below.
  const podScope = deps.state.podForKey(token);
  if (podScope === null && deps.apiKeys && !deps.apiKeys.has(token))
    return finish(problemReply(new ProblemError(401, 'invalid bearer token')), sub);

  const limit = deps.rateLimiter.take(token);
  Object.assign(extraHeaders, limit.headers);
  if (!limit.allowed && limit.exceeded) {
    extraHeaders['Retry-After'] = String(limit.exceeded.retryAfterS);
    return finish(
      problemReply(new ProblemError(429, `rate limit exceeded for the ${limit.exceeded.window} window`)),
      sub,
    );
  }
  if (deps.state.isForbidden(token)) return finish(problemReply(new ProblemError(403, 'access denied')), sub);

  const latency = deps.state.takeLatency(method, sub);
  if (latency) await delayMs(latency.delayMs);
  const storm = deps.state.takeStorm(method, sub);
  if (storm) {
    if (storm.status === 429) {
      extraHeaders['Retry-After'] = String(storm.retryAfterS);
      // Like a real exhausted window: the RateLimit header agrees with Retry-After, plus any other exhausted windows.
      extraHeaders.RateLimit = withExhaustedWindows(extraHeaders.RateLimit ?? '', [
        { window: 'minute', resetS: storm.retryAfterS },
        ...(storm.exhausted ?? []),
      ]);
      return finish(problemReply(new ProblemError(429, 'rate limit exceeded for the minute window')), sub);
    }
    return finish(problemReply(new ProblemError(storm.status, 'internal error')), sub);
  }

  const found = match(routes, sub);
  if (!found) {
    if (deps.unknownRoute === 'beta-422') {
      return finish(problemReply(new ProblemError(422, `${method} Path ${path} not found`)), sub);
    }
    return finish(problemReply(new ProblemError(404, `${method} Path ${path} not found`)), sub);
  }
  const handler = found.route.methods[method as Method];
  if (!handler) return finish(methodNotAllowed(found.route, extraHeaders), sub);
  if (podScope !== null && !podKeyAllows(podScope, method, found, body)) {
    return finish(problemReply(new ProblemError(403, 'access denied')), sub);
  }
  finish(await run(handler, found.params), sub);
}

/**
 * What a pod-scoped key may do in the emulator: read its own pod and stop it. RunPod documents the pod's
 * RUNPOD_API_KEY as "limited in scope to only the pod"; which REST v2 calls accept it is UNCONFIRMED, so the
 * emulator allows the least the watchdog needs (and refuses terminate, so a stopped pod keeps its volume).
 */
function podKeyAllows(podId: string, method: string, found: { route: Route; params: string[] }, body: string): boolean {
  const path = found.route.segments.join('/');
  if (found.params[0] !== podId) return false;
  if (method === 'GET' && path === 'pods/:id') return true;
  if (method !== 'POST' || path !== 'pods/:id/action') return false;
  try {
    return (JSON.parse(body) as { action?: unknown }).action === 'stop';
  } catch {
    return false;
  }
}

function match(routes: Route[], path: string): { route: Route; params: string[] } | null {
  const parts = path.split('/').filter((s) => s !== '');
  for (const route of routes) {
    if (route.segments.length !== parts.length) continue;
    const params: string[] = [];
    let okMatch = true;
    for (let i = 0; i < parts.length; i++) {
      const seg = route.segments[i] as string;
      const part = parts[i] as string;
      if (seg.startsWith(':')) {
        try {
          params.push(decodeURIComponent(part));
        } catch {
          okMatch = false;
          break;
        }
      } else if (seg !== part) {
        okMatch = false;
        break;
      }
    }
    if (okMatch) return { route, params };
  }
  return null;
}

function methodNotAllowed(route: Route, headers: Record<string, string>): Reply {
  headers.Allow = Object.keys(route.methods).join(', ');
  return problemReply(new ProblemError(405, 'The requested method is not allowed for this path.'));
}

function problemReply(err: ProblemError): Reply {
  return { status: err.status, body: err.body(), contentType: 'application/problem+json' };
}

function send(res: ServerResponse, reply: Reply, headers: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (reply.status === 204 || (reply.body === undefined && reply.text === undefined)) {
    res.writeHead(reply.status).end();
    return;
  }
  const text = reply.text ?? JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The body as text, or null once it exceeds `limitBytes` (the rest is drained, not buffered). */
function readBody(req: IncomingMessage, limitBytes: number): Promise<string | null> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) over = true;
      if (!over) chunks.push(chunk);
    });
    req.on('end', () => resolve(over ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseControl<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new ProblemError(400, z.prettifyError(r.error));
  return r.data;
}

function param(c: Ctx, i: number): string {
  return c.params[i] ?? '';
}

function stripUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function delayMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
