// The `/v2/pods` handlers after create: get, list (keyset pagination), delete, actions, patch and logs.
import type { BillingMeter } from './billing.js';
import type { FaultBook } from './faults.js';
import { actionsFor } from './model.js';
import type { EmulatorStateOptions, PodRecord } from './model.js';
import type { PodFaults } from './pod-faults.js';
import { podLog } from './pods.js';
import type { PodLifecycle } from './pods.js';
import { ProblemError, insufficientBalance, notFound, validationFailed } from './problems.js';
import type { Randomness } from './random.js';
import { renderPod } from './render.js';
import { validateActionBody, validatePatchBody } from './validation.js';

/** What the pod handlers work with; built once by EmulatorState. */
export interface PodContext {
  options: EmulatorStateOptions;
  lifecycle: PodLifecycle;
  billing: BillingMeter;
  faults: FaultBook;
  podFaults: PodFaults;
  random: Randomness;
  accountSshKeys: () => readonly string[];
}

const CURSOR_VERSION = 1;

/** `GET /v2/pods/{id}`. */
export function getPod(ctx: PodContext, id: string): Record<string, unknown> {
  return renderPod(ctx.lifecycle.require(id), ctx.options);
}

/** `GET /v2/pods`: newest first, keyset cursor, `pagination` only in the newest schema. */
export function listPods(ctx: PodContext, query: URLSearchParams): Record<string, unknown> {
  const now = Date.now();
  // A pod under the 'list-lag' fault exists (GET by id finds it) but the list does not show it yet.
  const all = ctx.lifecycle.newestFirst().filter((p) => p.unlistedUntilMs <= now);
  // Spec 2.9 had neither `limit` nor `cursor`; unknown query parameters are ignored.
  if (ctx.options.schemaMode === 'strict-2.9') return { pods: all.map((p) => renderPod(p, ctx.options)) };
  const includeCluster = query.get('includeClusterPods') === 'true';
  const limitText = query.get('limit');
  const limit = limitText === null ? 1000 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw validationFailed([
      Number.isInteger(limit) && limit > 1000
        ? `$.limit: must be <= 1000 but found ${limit}`
        : `$.limit: must be >= 1 but found ${limitText}`,
    ]);
  }
  const scope = includeCluster ? 'cluster' : 'plain';
  let after = Infinity;
  const cursor = query.get('cursor');
  if (cursor !== null) {
    const decoded = decodeCursor(cursor);
    if (!decoded || decoded.scope !== scope) throw validationFailed(['$.cursor: invalid cursor']);
    after = decoded.seq;
  }
  const rest = all.filter((p) => p.seq < after);
  const page = rest.slice(0, limit);
  const last = page[page.length - 1];
  const hasNextPage = rest.length > page.length && last !== undefined;
  // There are no cluster pods in the emulator; the exclusion would apply here, after the cut.
  return {
    pods: page.map((p) => renderPod(p, ctx.options)),
    pagination: { nextCursor: hasNextPage ? encodeCursor(last.seq, scope) : null, hasNextPage },
  };
}

/** `DELETE /v2/pods/{id}`: 204; a second DELETE is 404 unless `secondDelete` says 204. */
export async function deletePod(ctx: PodContext, id: string): Promise<void> {
  const pod = ctx.lifecycle.get(id);
  if (!pod) {
    if (ctx.lifecycle.wasTerminated(id) && ctx.options.secondDelete === 'no-content') return;
    throw notFound('pod');
  }
  await ctx.lifecycle.destroy(pod, 'terminated');
}

/** `POST /v2/pods/{id}/action`: the pod (200) for start/stop/restart, undefined (204) for terminate. */
export async function podAction(
  ctx: PodContext,
  id: string,
  raw: unknown,
): Promise<Record<string, unknown> | undefined> {
  const { lifecycle } = ctx;
  const action = validateActionBody(raw);
  const pod = lifecycle.require(id);
  if (!actionsFor(pod.status).includes(action)) {
    throw new ProblemError(409, `action '${action}' is not allowed for a pod in status ${pod.status}`);
  }
  switch (action) {
    case 'terminate':
      await lifecycle.destroy(pod, 'terminated');
      return undefined;
    case 'stop':
      await lifecycle.interrupt(pod);
      lifecycle.releaseGpus(pod);
      pod.runningSinceMs = null;
      lifecycle.setStatus(pod, 'EXITED');
      podLog(pod, 'system', 'pod stopped');
      return renderPod(pod, ctx.options);
    case 'restart':
      await lifecycle.interrupt(pod);
      freshContainer(pod);
      podLog(pod, 'system', 'pod restarting');
      lifecycle.enterRunning(pod, pod.generation);
      return renderPod(pod, ctx.options);
    case 'start': {
      if (ctx.faults.insufficientBalance) throw insufficientBalance();
      if (!pod.holdsGpus && pod.gpu && pod.cellKey) {
        // A stopped pod resumes on the same host, which may have given its GPUs away meanwhile.
        if (!ctx.options.catalog.reacquire(pod.cellKey, pod.gpu.count)) {
          throw new ProblemError(400, 'There are not enough free GPUs on the host machine to start this pod.');
        }
        pod.holdsGpus = true;
      }
      await lifecycle.interrupt(pod);
      freshContainer(pod);
      podLog(pod, 'system', 'pod starting');
      lifecycle.runTimeline(pod, 'STARTING');
      return renderPod(pod, ctx.options);
    }
  }
}

/**
 * A container (re)start: faults that model something broken inside the old container are gone with it. The workspace
 * (the pod directory) is kept, as a pod's volume is.
 */
function freshContainer(pod: PodRecord): void {
  pod.faults.sftpBroken = false;
}

/** `PATCH /v2/pods/{id}`: partial merge; a change to what the container runs restarts a running pod. */
export async function patchPod(ctx: PodContext, id: string, raw: unknown): Promise<Record<string, unknown>> {
  const body = validatePatchBody(raw, ctx.options.schemaMode);
  const pod = ctx.lifecycle.require(id);
  if (body.mounts) {
    const m = body.mounts;
    if (m.network && m.network.length === 0) throw new ProblemError(400, 'mounts.network must not be empty');
    if (m.network && m.persistent)
      throw new ProblemError(400, 'mounts.persistent and mounts.network cannot be used together');
    const kind = pod.mounts.persistent ? 'persistent' : pod.mounts.network ? 'network' : null;
    const next = m.persistent ? 'persistent' : m.network ? 'network' : null;
    if (kind !== null && next !== null && kind !== next)
      throw new ProblemError(400, 'the mount kind of a pod cannot change');
    const oldVolume = pod.mounts.network?.[0]?.volumeId;
    if (m.network && oldVolume !== undefined && m.network[0]?.volumeId !== oldVolume) {
      throw new ProblemError(400, 'mounts.network[0].volumeId cannot change');
    }
  }
  if (body.templateId !== undefined && !ctx.options.templates[body.templateId]) throw notFound('template');
  const restartNeeded = (['image', 'args', 'ports', 'env', 'entrypoint', 'cmd', 'disk', 'mounts'] as const).some(
    (k) => body[k] !== undefined,
  );
  if (body.name !== undefined) {
    pod.name = body.name;
    ctx.billing.rename(id, body.name);
  }
  if (body.image !== undefined) pod.image = body.image;
  if (body.args !== undefined) pod.args = body.args;
  if (body.disk !== undefined) pod.disk = body.disk;
  if (body.ports !== undefined) pod.ports = [...new Set(body.ports)];
  if (body.env !== undefined) {
    pod.env = { ...body.env };
    pod.authorizedKeys = pod.env.PUBLIC_KEY ?? '';
  }
  if (body.registry !== undefined) pod.registry = body.registry;
  if (body.mounts !== undefined) pod.mounts = body.mounts;
  if (body.entrypoint !== undefined) pod.entrypoint = body.entrypoint;
  if (body.cmd !== undefined) pod.cmd = body.cmd;
  if (body.locked !== undefined) pod.locked = body.locked;
  if (body.globalNetworking !== undefined) pod.globalNetworking = body.globalNetworking;
  if (restartNeeded && pod.status === 'RUNNING') {
    await ctx.lifecycle.interrupt(pod);
    freshContainer(pod);
    podLog(pod, 'system', 'pod updated; restarting container');
    ctx.lifecycle.enterRunning(pod, pod.generation);
  }
  return renderPod(pod, ctx.options);
}

/** `GET /v2/pods/{id}/logs`: the pod's log as one server-sent-events body (no follow). */
export function podLogs(ctx: PodContext, id: string, query: URLSearchParams, lastEventId: string | undefined): string {
  const pod = ctx.lifecycle.require(id);
  const source = query.get('source');
  if (source !== null && source !== 'container' && source !== 'system') {
    throw validationFailed(["$.source: value must be one of 'container', 'system'"]);
  }
  const tailText = query.get('tail');
  const tail = tailText === null ? 100 : Number(tailText);
  if (!Number.isInteger(tail) || tail < 0 || tail > 5000) {
    throw validationFailed([`$.tail: must be an integer between 0 and 5000 but found ${tailText}`]);
  }
  const sinceText = query.get('since') ?? lastEventId;
  const since = sinceText === undefined || sinceText === null ? -Infinity : Date.parse(sinceText);
  if (Number.isNaN(since)) throw validationFailed([`$.since: '${sinceText}' is not an RFC 3339 time`]);
  const lines = pod.logs
    .filter((l) => (source === null || l.source === source) && Date.parse(l.ts) > since)
    .slice(tail === 0 ? pod.logs.length : -tail);
  return lines.map((l) => `id: ${l.ts}\ndata: ${JSON.stringify(l)}\n\n`).join('');
}

function encodeCursor(seq: number, scope: string): string {
  return Buffer.from(JSON.stringify({ v: CURSOR_VERSION, op: 'listPods', seq, scope })).toString('base64url');
}

function decodeCursor(cursor: string): { seq: number; scope: string } | null {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null) return null;
    const o = v as Record<string, unknown>;
    if (o.v !== CURSOR_VERSION || o.op !== 'listPods' || typeof o.seq !== 'number' || typeof o.scope !== 'string') {
      return null;
    }
    return { seq: o.seq, scope: o.scope };
  } catch {
    return null;
  }
}
