// In-memory emulator state: pods and their timeline, capacity, billing, faults and account keys.
// Handlers call these methods; they throw ProblemError for every API-visible failure.
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CapacityCell, CapacityModel, Cloud } from './catalog.js';
import type { ParsedFault, PodFaultEffect } from './control.js';
import { hostileBinDir, writeHostileShim, type HostileResultsSettings } from './hostile.js';
import { ProblemError, noCapacity, notFound, validationFailed } from './problems.js';
import { hostKeySha256, newHostKey, podPaths, preparePodDir } from './sshd.js';
import type { SshdHandle, SshdManager } from './sshd.js';
import {
  checkCreateCrossFields,
  validateActionBody,
  validateCreateBody,
  validatePatchBody,
  validateSshKeysBody,
} from './validation.js';
import type { Mounts, SchemaMode } from './validation.js';

export type PodStatus = 'PROVISIONING' | 'STARTING' | 'RUNNING' | 'EXITED' | 'ERROR' | 'TERMINATED';
/** 'spec': PROVISIONING -> STARTING -> RUNNING. 'observed': RUNNING from creation (what production showed). */
export type StatusMode = 'spec' | 'observed';

/** Each delay runs after the previous step. */
export interface TimelineDelays {
  /** PROVISIONING -> STARTING ('spec' mode). */
  provisioningDelayMs: number;
  /** STARTING -> RUNNING ('spec' mode, and on start after stop). */
  startingDelayMs: number;
  /** RUNNING -> `runtime` non-null (image pulled, container up). */
  imagePullDelayMs: number;
  /** runtime up -> sshd started and ports published (`ssh.direct` set). The port refuses until then. */
  portDelayMs: number;
}

export const DEFAULT_TIMELINE: TimelineDelays = {
  provisioningDelayMs: 300,
  startingDelayMs: 300,
  imagePullDelayMs: 500,
  portDelayMs: 500,
};

export interface TemplateSpec {
  image?: string;
  env?: Record<string, string>;
  ports?: string[];
  args?: string;
  disk?: number;
  /** A serverless template cannot back a pod (422). */
  serverless?: boolean;
}

export interface NetworkVolumeSpec {
  id: string;
  dataCenterId: string;
}

export interface EmulatorStateOptions {
  dataDir: string;
  schemaMode: SchemaMode;
  statusMode: StatusMode;
  timeline: TimelineDelays;
  /** Whether PROVISIONING/STARTING accrue cost (UNCONFIRMED upstream). */
  billProvisioning: boolean;
  /** Prepended to PATH in every SSH session. */
  podPathPrefix: string;
  /** Extra session environment for every pod (like the image's ENV; the create body's env wins). */
  podEnv: Record<string, string>;
  templates: Record<string, TemplateSpec>;
  networkVolumes: NetworkVolumeSpec[];
  accountSshKeys: string[];
  /** A DELETE of an already-terminated pod: 404 (spec) or 204. */
  secondDelete: 'not-found' | 'no-content';
  /** Container disk when neither body nor template sets one (UNCONFIRMED upstream). */
  defaultDiskGb: number;
  /** `ssh.direct.username`: the OS user the emulator (and so sshd) runs as. */
  sshUser: string;
  seed: number | undefined;
  catalog: CapacityModel;
  sshd: SshdManager;
  sshKeygenPath: string;
  log: (line: string) => void;
}

interface PortMapping {
  private: number;
  public: number | null;
  type: string;
  ip: string | null;
}

interface LogLine {
  ts: string;
  source: 'system' | 'container';
  line: string;
}

interface PodRecord {
  seq: number;
  id: string;
  name: string;
  image: string;
  args: string;
  entrypoint: string[];
  cmd: string[];
  disk: number;
  ports: string[];
  env: Record<string, string>;
  registry: string | null;
  mounts: Mounts;
  locked: boolean;
  globalNetworking: boolean;
  cloud: Cloud;
  dataCenterId: string;
  cudaVersion: string | null;
  gpu: { id: string; count: number; vcpuCount: number; memory: number } | null;
  cpu: { id: string; vcpuCount: number; memory: number } | null;
  /** Capacity cell holding the GPUs; the pod is pinned to it across stop/start. */
  cellKey: string | null;
  holdsGpus: boolean;
  costPerHr: number;
  proxyUsername: string;
  createdAtMs: number;
  startedAtMs: number | null;
  status: PodStatus;
  runningSinceMs: number | null;
  runtimeVisible: boolean;
  published: PortMapping[] | null;
  sshd: SshdHandle | null;
  dir: string;
  authorizedKeys: string;
  faults: { noPorts: boolean; sshdRefuses: boolean };
  /** Set by the 'hostile-results' fault: the pod's PATH starts with the planting shim. */
  hostile: HostileResultsSettings | null;
  /** Host key swaps done by the 'host-key-swap' fault. */
  hostKeySwaps: number;
  /** Timeline timers, cancelled by any interruption (stop, restart, error, delete). */
  timers: Set<NodeJS.Timeout>;
  /** Fault timers (error/vanish after N ms), cancelled only on delete. */
  faultTimers: Set<NodeJS.Timeout>;
  /** Bumped on every interruption so late timeline steps and sshd starts know they are stale. */
  generation: number;
  logs: LogLine[];
  /**
   * The pod's own API key, in its sessions as RUNPOD_API_KEY: accepted only for reading this pod and stopping it.
   * RunPod documents a RUNPOD_API_KEY "limited in scope to only the pod"; what REST v2 lets it do is UNCONFIRMED.
   */
  apiKey: string;
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

export interface PodInternals {
  id: string;
  name: string;
  status: PodStatus;
  dir: string;
  workspaceDir: string;
  sshdPid: number | null;
  sshdPort: number | null;
  gpuTypeId: string | null;
  gpuCount: number;
  dataCenterId: string;
  cloud: Cloud;
  costPerHr: number;
  faults: { noPorts: boolean; sshdRefuses: boolean; hostileResults: boolean };
  /** The fingerprint of the host key the pod's sshd presents (`SHA256:...`, as `ssh-keygen -lf` prints it). */
  hostKeySha256: string | null;
  /** How often the 'host-key-swap' fault replaced the pod's host key (and restarted its sshd with it). */
  hostKeySwaps: number;
  createdAt: string;
  /** The pod-scoped key its sessions see as RUNPOD_API_KEY. */
  podApiKey: string;
}

export interface FaultsSnapshot {
  create5xx: { status: number; remaining: number }[];
  storms: { status: number; remaining: number; retryAfterS: number; method?: string; pathPrefix?: string }[];
  latency: { delayMs: number; remaining: number; method?: string; pathPrefix?: string }[];
  insufficientBalance: boolean;
  forbiddenKeys: string[];
  restrictedGpuTypes: string[];
  staleCatalog: boolean;
  podRules: ({ effect: PodFaultEffect; namePrefix?: string; remaining: number } & PodFaultParams)[];
}

export interface CallRecord {
  at: string;
  method: string;
  path: string;
  status: number;
}

type Storm = FaultsSnapshot['storms'][number];
type Latency = FaultsSnapshot['latency'][number];

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const CURSOR_VERSION = 1;
const MAX_CALLS = 1000;
const MAX_LOG_LINES = 5000;

export class EmulatorState {
  readonly #o: EmulatorStateOptions;
  /** From 'pod-env' faults: session environment for pods created from now on, over `podEnv`. */
  #extraPodEnv: Record<string, string> = {};
  readonly #pods = new Map<string, PodRecord>();
  readonly #terminated = new Set<string>();
  /** Pod-scoped API key -> pod id, for live pods only. */
  readonly #podKeys = new Map<string, string>();
  /** Capacity changes scheduled with `afterMs`. */
  readonly #capacityTimers = new Set<NodeJS.Timeout>();
  readonly #billing = new Map<string, BillingRecord>();
  readonly #random: () => number;
  #seq = 0;
  #closed = false;
  #accountKeys: string[];
  readonly #calls: CallRecord[] = [];
  readonly #faults: FaultsSnapshot = emptyFaults();

  constructor(options: EmulatorStateOptions) {
    this.#o = options;
    this.#random = options.seed === undefined ? Math.random : mulberry32(options.seed);
    this.#accountKeys = [...options.accountSshKeys];
  }

  get schemaMode(): SchemaMode {
    return this.#o.schemaMode;
  }

  get catalog(): CapacityModel {
    return this.#o.catalog;
  }

  // ---- pods --------------------------------------------------------------------------------------

  /** `POST /v2/pods`. Returns the rendered pod (201). */
  async createPod(raw: unknown): Promise<Record<string, unknown>> {
    const body = validateCreateBody(raw, this.#o.schemaMode);
    let image = body.image;
    let env = { ...(body.env ?? {}) };
    let ports = body.ports;
    let args = body.args;
    let disk = body.disk;
    if (body.templateId !== undefined) {
      // Resolved once at create: body fields win, env merges per key, `template` stays null.
      const t = this.#o.templates[body.templateId];
      if (!t) throw notFound('template');
      if (t.serverless) throw new ProblemError(422, `template ${body.templateId} is a serverless template`);
      image ??= t.image;
      env = { ...(t.env ?? {}), ...env };
      ports ??= t.ports;
      args ??= t.args;
      disk ??= t.disk;
    }
    if (image === undefined) throw validationFailed(["$: missing property 'image'"]);
    checkCreateCrossFields(body, this.#o.catalog.cpuFlavors);

    let dataCenterIds = body.dataCenterIds ?? [];
    const volume = body.mounts?.network?.[0];
    if (volume) {
      const v = this.#o.networkVolumes.find((n) => n.id === volume.volumeId);
      if (!v) throw notFound('network volume');
      // UNCONFIRMED upstream: we reject a volume outside the listed DCs rather than move the pod to it.
      if (dataCenterIds.length > 0 && !dataCenterIds.includes(v.dataCenterId)) {
        throw new ProblemError(
          400,
          `network volume ${v.id} is in data center ${v.dataCenterId}, which is not in dataCenterIds`,
        );
      }
      dataCenterIds = [v.dataCenterId];
    }
    if (this.#faults.insufficientBalance) throw insufficientBalance();
    const cloud: Cloud = body.cloud ?? 'SECURE';

    let placement: {
      cellKey: string | null;
      dataCenterId: string;
      cudaVersion: string | null;
      costPerHr: number;
      gpu: PodRecord['gpu'];
      cpu: PodRecord['cpu'];
    };
    if (body.gpu) {
      if (this.#faults.restrictedGpuTypes.includes(body.gpu.id)) {
        throw new ProblemError(403, 'Your account cannot access the requested pool');
      }
      const p = this.#o.catalog.placeGpu({
        gpuTypeId: body.gpu.id,
        count: body.gpu.count ?? 1,
        cloud,
        dataCenterIds,
        allowedCudaVersions: body.gpu.allowedCudaVersions,
        minCudaVersion: body.gpu.minCudaVersion,
        minRamPerGpu: body.gpu.minRamPerGpu,
        minVcpuCountPerGpu: body.gpu.minVcpuCountPerGpu,
        globalNetworking: body.globalNetworking,
      });
      placement = {
        cellKey: p.cellKey,
        dataCenterId: p.dataCenterId,
        cudaVersion: p.cudaVersion,
        costPerHr: p.costPerHr,
        gpu: { id: p.gpuTypeId, count: p.count, vcpuCount: p.vcpuCount, memory: p.memoryGb },
        cpu: null,
      };
    } else {
      const cpu = body.cpu as { id: string; vcpuCount: number };
      const flavor = this.#o.catalog.cpuFlavors.get(cpu.id);
      const dcs = dataCenterIds.length > 0 ? dataCenterIds : [...this.#o.catalog.dataCenters.keys()];
      const dc = dcs.find((d) => this.#o.catalog.dataCenters.has(d));
      if (!flavor || !dc) throw noCapacity();
      placement = {
        cellKey: null,
        dataCenterId: dc,
        cudaVersion: null,
        costPerHr: round6(flavor.price.securePerVcpu * cpu.vcpuCount),
        gpu: null,
        cpu: { id: flavor.id, vcpuCount: cpu.vcpuCount, memory: flavor.ramGbPerVcpu * cpu.vcpuCount },
      };
    }

    const id = this.#newId();
    const dir = join(this.#o.dataDir, 'pods', id);
    try {
      await preparePodDir({ dir, podId: id, sshKeygenPath: this.#o.sshKeygenPath });
    } catch (err) {
      if (placement.cellKey && placement.gpu) this.#o.catalog.release(placement.cellKey, placement.gpu.count);
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    // startSsh injects the account's keys unless env already has PUBLIC_KEY; with no keys it does nothing.
    if (body.startSsh && env.PUBLIC_KEY === undefined && this.#accountKeys.length > 0) {
      env.PUBLIC_KEY = this.#accountKeys.join('\n');
    }
    const now = Date.now();
    const pod: PodRecord = {
      seq: ++this.#seq,
      id,
      name: body.name,
      image,
      args: args ?? '',
      entrypoint: body.entrypoint ?? [],
      cmd: body.cmd ?? [],
      disk: disk ?? this.#o.defaultDiskGb,
      ports: [...new Set(ports ?? [])],
      env,
      registry: body.registry ?? null,
      mounts: body.mounts ?? {},
      locked: false,
      globalNetworking: body.globalNetworking ?? false,
      cloud,
      ...placement,
      holdsGpus: placement.gpu !== null,
      proxyUsername: `${id}-${this.#hex(8)}`,
      createdAtMs: now,
      startedAtMs: null,
      status: 'PROVISIONING',
      runningSinceMs: null,
      runtimeVisible: false,
      published: null,
      sshd: null,
      dir,
      authorizedKeys: env.PUBLIC_KEY ?? '',
      faults: { noPorts: false, sshdRefuses: false },
      hostile: null,
      hostKeySwaps: 0,
      timers: new Set(),
      faultTimers: new Set(),
      generation: 0,
      logs: [],
      apiKey: `pod-${id}-${this.#hex(24)}`,
    };
    this.#pods.set(id, pod);
    this.#podKeys.set(pod.apiKey, id);
    this.#billing.set(id, {
      podId: id,
      name: pod.name,
      costPerHr: pod.costPerHr,
      billedMs: 0,
      openSinceMs: null,
      createdAtMs: now,
      deletedAtMs: null,
    });
    this.#podLog(
      pod,
      'system',
      `pod created in ${pod.dataCenterId} (${pod.gpu ? `${pod.gpu.count}x ${pod.gpu.id}` : pod.cpu?.id})`,
    );
    this.#applyPodRules(pod);
    this.#runTimeline(pod, 'PROVISIONING');

    const failing = this.#faults.create5xx.find((f) => f.remaining > 0);
    if (failing) {
      failing.remaining--;
      this.#faults.create5xx = this.#faults.create5xx.filter((f) => f.remaining > 0);
      this.#o.log(`fault: pod ${id} created but answering ${failing.status}`);
      throw new ProblemError(failing.status, 'internal error');
    }
    return this.#render(pod);
  }

  /** `GET /v2/pods/{id}`. */
  getPod(id: string): Record<string, unknown> {
    return this.#render(this.#require(id));
  }

  /** `GET /v2/pods`: newest first, keyset cursor, `pagination` only in the newest schema. */
  listPods(query: URLSearchParams): Record<string, unknown> {
    const all = [...this.#pods.values()].sort((a, b) => b.seq - a.seq);
    // Spec 2.9 had neither `limit` nor `cursor`; unknown query parameters are ignored.
    if (this.#o.schemaMode === 'strict-2.9') return { pods: all.map((p) => this.#render(p)) };
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
      pods: page.map((p) => this.#render(p)),
      pagination: { nextCursor: hasNextPage ? encodeCursor(last.seq, scope) : null, hasNextPage },
    };
  }

  /** `DELETE /v2/pods/{id}`: 204; a second DELETE is 404 unless `secondDelete` says 204. */
  async deletePod(id: string): Promise<void> {
    const pod = this.#pods.get(id);
    if (!pod) {
      if (this.#terminated.has(id) && this.#o.secondDelete === 'no-content') return;
      throw notFound('pod');
    }
    await this.#destroy(pod, 'terminated');
  }

  /** `POST /v2/pods/{id}/action`: the pod (200) for start/stop/restart, undefined (204) for terminate. */
  async podAction(id: string, raw: unknown): Promise<Record<string, unknown> | undefined> {
    const action = validateActionBody(raw);
    const pod = this.#require(id);
    if (!actionsFor(pod.status).includes(action)) {
      throw new ProblemError(409, `action '${action}' is not allowed for a pod in status ${pod.status}`);
    }
    switch (action) {
      case 'terminate':
        await this.#destroy(pod, 'terminated');
        return undefined;
      case 'stop':
        await this.#interrupt(pod);
        this.#releaseGpus(pod);
        pod.runningSinceMs = null;
        this.#setStatus(pod, 'EXITED');
        this.#podLog(pod, 'system', 'pod stopped');
        return this.#render(pod);
      case 'restart':
        await this.#interrupt(pod);
        this.#podLog(pod, 'system', 'pod restarting');
        this.#enterRunning(pod, pod.generation);
        return this.#render(pod);
      case 'start': {
        if (this.#faults.insufficientBalance) throw insufficientBalance();
        if (!pod.holdsGpus && pod.gpu && pod.cellKey) {
          // A stopped pod resumes on the same host, which may have given its GPUs away meanwhile.
          if (!this.#o.catalog.reacquire(pod.cellKey, pod.gpu.count)) {
            throw new ProblemError(400, 'There are not enough free GPUs on the host machine to start this pod.');
          }
          pod.holdsGpus = true;
        }
        await this.#interrupt(pod);
        this.#podLog(pod, 'system', 'pod starting');
        this.#runTimeline(pod, 'STARTING');
        return this.#render(pod);
      }
    }
  }

  /** `PATCH /v2/pods/{id}`: partial merge; a change to what the container runs restarts a running pod. */
  async patchPod(id: string, raw: unknown): Promise<Record<string, unknown>> {
    const body = validatePatchBody(raw, this.#o.schemaMode);
    const pod = this.#require(id);
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
    if (body.templateId !== undefined && !this.#o.templates[body.templateId]) throw notFound('template');
    const restartNeeded = (['image', 'args', 'ports', 'env', 'entrypoint', 'cmd', 'disk', 'mounts'] as const).some(
      (k) => body[k] !== undefined,
    );
    if (body.name !== undefined) {
      pod.name = body.name;
      const b = this.#billing.get(id);
      if (b) b.name = body.name;
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
      await this.#interrupt(pod);
      this.#podLog(pod, 'system', 'pod updated; restarting container');
      this.#enterRunning(pod, pod.generation);
    }
    return this.#render(pod);
  }

  /** `GET /v2/pods/{id}/logs`: the pod's log as one server-sent-events body (no follow). */
  podLogs(id: string, query: URLSearchParams, lastEventId: string | undefined): string {
    const pod = this.#require(id);
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

  /** The pod a pod-scoped API key belongs to, or null for any other token. */
  podForKey(token: string): string | null {
    return this.#podKeys.get(token) ?? null;
  }

  // ---- capacity ----------------------------------------------------------------------------------

  /** Sets capacity now, or `afterMs` from now. Cells are checked at once either way. */
  setCapacity(update: { cells: CapacityCell[]; replace: boolean; afterMs: number }): void {
    this.#o.catalog.checkCells(update.cells);
    if (update.afterMs <= 0) {
      this.#o.catalog.setCapacity(update.cells, { replace: update.replace });
      return;
    }
    const timer = setTimeout(() => {
      this.#capacityTimers.delete(timer);
      if (this.#closed) return;
      this.#o.catalog.setCapacity(update.cells, { replace: update.replace });
      this.#o.log(`capacity changed (scheduled): ${update.cells.length} cell(s)`);
    }, update.afterMs);
    this.#capacityTimers.add(timer);
  }

  // ---- account -----------------------------------------------------------------------------------

  getSshKeys(): { keys: string[] } {
    return { keys: [...this.#accountKeys] };
  }

  /** `PUT /v2/account/ssh-keys` replaces the whole set. */
  putSshKeys(raw: unknown): { keys: string[] } {
    this.#accountKeys = [...validateSshKeysBody(raw)];
    return this.getSshKeys();
  }

  // ---- faults ------------------------------------------------------------------------------------

  get insufficientBalance(): boolean {
    return this.#faults.insufficientBalance;
  }

  isForbidden(apiKey: string): boolean {
    return this.#faults.forbiddenKeys.includes(apiKey);
  }

  /** Applies one (already parsed) fault. @throws Error for a podId that does not exist. */
  injectFault(fault: ParsedFault): void {
    const f = this.#faults;
    switch (fault.type) {
      case 'clear':
        Object.assign(f, emptyFaults());
        this.#o.catalog.staleCatalog = false;
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
      case 'stale-catalog':
        f.staleCatalog = fault.enabled;
        this.#o.catalog.staleCatalog = fault.enabled;
        return;
      case 'pod': {
        if (fault.podId === undefined) {
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
        const pod = this.#pods.get(fault.podId);
        if (!pod) throw new Error(`no pod ${fault.podId}`);
        this.#applyPodFault(pod, fault.effect, podFaultParams(fault));
        return;
      }
    }
  }

  /** Consumes one storm response for this request, if one matches. */
  takeStorm(method: string, path: string): Storm | null {
    return takeMatching(this.#faults.storms, method, path, (s) => (this.#faults.storms = s));
  }

  /** Consumes one latency injection for this request, if one matches. */
  takeLatency(method: string, path: string): Latency | null {
    return takeMatching(this.#faults.latency, method, path, (s) => (this.#faults.latency = s));
  }

  // ---- observation -------------------------------------------------------------------------------

  recordCall(call: Omit<CallRecord, 'at'>): void {
    this.#calls.push({ at: new Date().toISOString(), ...call });
    if (this.#calls.length > MAX_CALLS) this.#calls.splice(0, this.#calls.length - MAX_CALLS);
  }

  calls(): CallRecord[] {
    return this.#calls.map((c) => ({ ...c }));
  }

  billing(): BillingSnapshot {
    const now = Date.now();
    const pods = [...this.#billing.values()].map((b): BillingPodEntry => {
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

  pods(): PodInternals[] {
    return [...this.#pods.values()]
      .sort((a, b) => b.seq - a.seq)
      .map((p) => ({
        id: p.id,
        name: p.name,
        status: p.status,
        dir: p.dir,
        workspaceDir: podPaths(p.dir).workspace,
        sshdPid: p.sshd?.pid ?? null,
        sshdPort: p.sshd?.port ?? null,
        gpuTypeId: p.gpu?.id ?? null,
        gpuCount: p.gpu?.count ?? 0,
        dataCenterId: p.dataCenterId,
        cloud: p.cloud,
        costPerHr: p.costPerHr,
        faults: { ...p.faults, hostileResults: p.hostile !== null },
        hostKeySha256: hostKeySha256(p.dir),
        hostKeySwaps: p.hostKeySwaps,
        createdAt: new Date(p.createdAtMs).toISOString(),
        podApiKey: p.apiKey,
      }));
  }

  faults(): FaultsSnapshot {
    return structuredClone(this.#faults);
  }

  accountSshKeys(): string[] {
    return [...this.#accountKeys];
  }

  /** Stops every timer and every pod's processes; billing stops accruing. Pods stay listed in state(). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#capacityTimers) clearTimeout(t);
    this.#capacityTimers.clear();
    const now = Date.now();
    for (const pod of this.#pods.values()) {
      pod.generation++;
      for (const t of [...pod.timers, ...pod.faultTimers]) clearTimeout(t);
      pod.timers.clear();
      pod.faultTimers.clear();
      pod.sshd = null;
    }
    for (const b of this.#billing.values()) {
      if (b.openSinceMs !== null) {
        b.billedMs += now - b.openSinceMs;
        b.openSinceMs = null;
      }
    }
    await this.#o.sshd.stopAll();
  }

  // ---- internals ---------------------------------------------------------------------------------

  #require(id: string): PodRecord {
    const pod = this.#pods.get(id);
    if (!pod) throw notFound('pod');
    return pod;
  }

  #newId(): string {
    for (;;) {
      let id = '';
      for (let i = 0; i < 14; i++) id += ID_ALPHABET[Math.floor(this.#random() * ID_ALPHABET.length)];
      if (!this.#pods.has(id) && !this.#terminated.has(id)) return id;
    }
  }

  #hex(n: number): string {
    if (this.#o.seed === undefined)
      return randomBytes(Math.ceil(n / 2))
        .toString('hex')
        .slice(0, n);
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(this.#random() * 16).toString(16);
    return s;
  }

  #randomInt(min: number, max: number): number {
    return min + Math.floor(this.#random() * (max - min + 1));
  }

  #stale(pod: PodRecord, gen: number): boolean {
    return this.#closed || pod.generation !== gen || this.#pods.get(pod.id) !== pod;
  }

  #schedule(pod: PodRecord, gen: number, delayMs: number, step: () => void | Promise<void>): void {
    const timer = setTimeout(() => {
      pod.timers.delete(timer);
      if (this.#stale(pod, gen)) return;
      Promise.resolve()
        .then(step)
        .catch((err: unknown) => this.#o.log(`pod ${pod.id}: timeline step failed: ${String(err)}`));
    }, delayMs);
    pod.timers.add(timer);
  }

  #runTimeline(pod: PodRecord, from: 'PROVISIONING' | 'STARTING'): void {
    const gen = pod.generation;
    const t = this.#o.timeline;
    if (this.#o.statusMode === 'observed') {
      this.#enterRunning(pod, gen);
      return;
    }
    if (from === 'PROVISIONING') {
      this.#setStatus(pod, 'PROVISIONING');
      this.#schedule(pod, gen, t.provisioningDelayMs, () => this.#runTimeline(pod, 'STARTING'));
      return;
    }
    this.#setStatus(pod, 'STARTING');
    this.#schedule(pod, gen, t.startingDelayMs, () => this.#enterRunning(pod, gen));
  }

  #enterRunning(pod: PodRecord, gen: number): void {
    const now = Date.now();
    pod.startedAtMs = now;
    pod.runningSinceMs = now;
    this.#setStatus(pod, 'RUNNING');
    this.#podLog(pod, 'system', `pulling image ${pod.image}`);
    this.#schedule(pod, gen, this.#o.timeline.imagePullDelayMs, () => {
      pod.runtimeVisible = true;
      this.#podLog(pod, 'container', 'container started');
      this.#schedule(pod, gen, this.#o.timeline.portDelayMs, () => this.#publishPorts(pod, gen));
    });
  }

  async #publishPorts(pod: PodRecord, gen: number): Promise<void> {
    if (pod.faults.noPorts) {
      this.#podLog(pod, 'system', 'no ports assigned (fault)');
      return;
    }
    if (pod.ports.includes('22/tcp')) {
      let handle: SshdHandle;
      try {
        handle = await this.#o.sshd.start({
          podId: pod.id,
          dir: pod.dir,
          authorizedKeys: pod.faults.sshdRefuses ? '' : pod.authorizedKeys,
          env: this.#sessionEnv(pod),
        });
      } catch (err) {
        if (this.#stale(pod, gen)) return;
        this.#o.log(`pod ${pod.id}: ${String(err)}`);
        this.#podLog(pod, 'system', `sshd failed to start: ${String(err)}`);
        this.#setStatus(pod, 'ERROR');
        return;
      }
      if (this.#stale(pod, gen)) {
        await this.#o.sshd.stop(handle);
        return;
      }
      pod.sshd = handle;
      this.#podLog(pod, 'container', `sshd listening on 127.0.0.1:${handle.port}`);
    }
    pod.published = pod.ports.map((spec): PortMapping => {
      const [portText = '', type = 'tcp'] = spec.split('/');
      const priv = Number(portText);
      if (type === 'http') {
        return {
          private: priv,
          public: this.#randomInt(10_000, 65_000),
          type,
          ip: `100.65.${this.#randomInt(0, 255)}.${this.#randomInt(1, 254)}`,
        };
      }
      const pub = priv === 22 && pod.sshd ? pod.sshd.port : this.#randomInt(10_000, 65_000);
      return { private: priv, public: pub, type, ip: '127.0.0.1' };
    });
  }

  /** Session environment for sshd's SetEnv, lowest precedence first. */
  #sessionEnv(pod: PodRecord): [string, string][] {
    const path = [pod.hostile ? hostileBinDir(pod.dir) : '', this.#o.podPathPrefix, '/usr/local/bin:/usr/bin:/bin']
      .filter((s) => s !== '')
      .join(':');
    return [
      ...Object.entries({ ...this.#o.podEnv, ...this.#extraPodEnv }).filter(([, v]) => v !== ''),
      ...Object.entries(pod.env),
      ['POD_WORKSPACE', podPaths(pod.dir).workspace],
      ['HOME', podPaths(pod.dir).home],
      ['RUNPOD_POD_ID', pod.id],
      // RunPod's documented pod variable; the emulator accepts it only for GET and stop of this pod.
      ['RUNPOD_API_KEY', pod.apiKey],
      ['RUNPOD_GPU_COUNT', String(pod.gpu?.count ?? 0)],
      ['PATH', path],
    ];
  }

  /** Cancels the running timeline and kills the pod's sshd (and what runs in it). */
  async #interrupt(pod: PodRecord): Promise<void> {
    pod.generation++;
    for (const t of pod.timers) clearTimeout(t);
    pod.timers.clear();
    pod.runtimeVisible = false;
    pod.published = null;
    const sshd = pod.sshd;
    pod.sshd = null;
    if (sshd) await this.#o.sshd.stop(sshd);
  }

  async #destroy(pod: PodRecord, why: 'terminated' | 'vanished'): Promise<void> {
    // Gone from the API and the meter at once; process and directory cleanup follow.
    this.#pods.delete(pod.id);
    this.#podKeys.delete(pod.apiKey);
    this.#terminated.add(pod.id);
    this.#closeBilling(pod.id, true);
    this.#releaseGpus(pod);
    for (const t of pod.faultTimers) clearTimeout(t);
    pod.faultTimers.clear();
    pod.status = 'TERMINATED';
    await this.#interrupt(pod);
    await rm(pod.dir, { recursive: true, force: true });
    this.#o.log(`pod ${pod.id} ${why}`);
  }

  #releaseGpus(pod: PodRecord): void {
    if (pod.holdsGpus && pod.gpu && pod.cellKey) this.#o.catalog.release(pod.cellKey, pod.gpu.count);
    pod.holdsGpus = false;
  }

  #setStatus(pod: PodRecord, status: PodStatus): void {
    pod.status = status;
    const billable =
      status === 'RUNNING' ||
      // An ERROR pod still holds its GPUs until someone terminates it.
      status === 'ERROR' ||
      ((status === 'PROVISIONING' || status === 'STARTING') && this.#o.billProvisioning);
    const b = this.#billing.get(pod.id);
    if (!b) return;
    if (billable && b.openSinceMs === null && !this.#closed) b.openSinceMs = Date.now();
    if (!billable) this.#closeBilling(pod.id, false);
  }

  #closeBilling(podId: string, deleted: boolean): void {
    const b = this.#billing.get(podId);
    if (!b) return;
    const now = Date.now();
    if (b.openSinceMs !== null) {
      b.billedMs += now - b.openSinceMs;
      b.openSinceMs = null;
    }
    if (deleted) b.deletedAtMs = now;
  }

  #applyPodRules(pod: PodRecord): void {
    for (const rule of this.#faults.podRules) {
      if (rule.remaining <= 0 || (rule.namePrefix !== undefined && !pod.name.startsWith(rule.namePrefix))) continue;
      rule.remaining--;
      this.#applyPodFault(pod, rule.effect, rule);
    }
    this.#faults.podRules = this.#faults.podRules.filter((r) => r.remaining > 0);
  }

  #applyPodFault(pod: PodRecord, effect: PodFaultEffect, params: PodFaultParams): void {
    const { afterMs } = params;
    this.#o.log(`fault: pod ${pod.id} ${effect}${afterMs > 0 ? ` after ${afterMs} ms` : ''}`);
    switch (effect) {
      case 'hostile-results':
        pod.hostile = { linkTarget: params.linkTarget, oversizeBytes: params.oversizeBytes };
        writeHostileShim(pod.dir, pod.hostile);
        // A running sshd got its session PATH at start: restart it in place so new sessions see the shim.
        if (pod.sshd) this.#restartSshd(pod, 'hostile PATH').catch(() => undefined);
        return;
      case 'host-key-swap': {
        // Waits on the pod's own sshd log (logins accepted), so the swap lands right after the readiness check.
        const poll = async (): Promise<void> => {
          if (this.#pods.get(pod.id) !== pod || this.#closed) return;
          const logins = pod.sshd ? await this.#o.sshd.acceptedLogins(pod.dir) : -1;
          if (pod.sshd && logins >= params.afterLogins) {
            await newHostKey({ dir: pod.dir, podId: pod.id, sshKeygenPath: this.#o.sshKeygenPath });
            if (await this.#restartSshd(pod, 'new host key')) pod.hostKeySwaps++;
            return;
          }
          const timer = setTimeout(() => {
            pod.faultTimers.delete(timer);
            poll().catch((err: unknown) => this.#o.log(`pod ${pod.id}: host key swap failed: ${String(err)}`));
          }, 50);
          pod.faultTimers.add(timer);
        };
        poll().catch((err: unknown) => this.#o.log(`pod ${pod.id}: host key swap failed: ${String(err)}`));
        return;
      }
      case 'no-ports':
        pod.faults.noPorts = true;
        if (pod.published) {
          void this.#interrupt(pod).then(() => {
            if (pod.status === 'RUNNING') pod.runtimeVisible = true;
          });
        }
        return;
      case 'sshd-refuses':
        pod.faults.sshdRefuses = true;
        // sshd reads authorized_keys on every attempt, so emptying it takes effect at once.
        if (pod.sshd) void writeFile(podPaths(pod.dir).authorizedKeys, '').catch(() => undefined);
        return;
      case 'ssh-drop': {
        const timer = setTimeout(() => {
          pod.faultTimers.delete(timer);
          const dropped = pod.sshd ? this.#o.sshd.dropConnections(pod.sshd) : 0;
          this.#podLog(pod, 'system', `network drop: ${dropped} SSH connection(s) cut (fault)`);
        }, afterMs);
        pod.faultTimers.add(timer);
        return;
      }
      case 'error':
      case 'vanish': {
        const run = async (): Promise<void> => {
          if (this.#pods.get(pod.id) !== pod || this.#closed) return;
          if (effect === 'vanish') {
            await this.#destroy(pod, 'vanished');
            return;
          }
          await this.#interrupt(pod);
          this.#setStatus(pod, 'ERROR');
          this.#podLog(pod, 'system', 'container exited with an error (fault)');
        };
        const timer = setTimeout(() => {
          pod.faultTimers.delete(timer);
          run().catch((err: unknown) => this.#o.log(`pod ${pod.id}: fault failed: ${String(err)}`));
        }, afterMs);
        pod.faultTimers.add(timer);
        return;
      }
    }
  }

  /**
   * Restarts the pod's sshd listener in place (same port; connections and pod processes live on) so it picks up the
   * pod directory's host key and the current session environment. False when the pod moved on meanwhile.
   */
  async #restartSshd(pod: PodRecord, why: string): Promise<boolean> {
    const old = pod.sshd;
    if (!old) return false;
    const gen = pod.generation;
    const next = await this.#o.sshd.restart(old, {
      podId: pod.id,
      dir: pod.dir,
      authorizedKeys: pod.faults.sshdRefuses ? '' : pod.authorizedKeys,
      env: this.#sessionEnv(pod),
    });
    if (this.#stale(pod, gen) || pod.sshd !== old) {
      await this.#o.sshd.stop(next);
      return false;
    }
    pod.sshd = next;
    this.#podLog(pod, 'system', `sshd restarted in place on 127.0.0.1:${next.port} (${why}; fault)`);
    return true;
  }

  #podLog(pod: PodRecord, source: LogLine['source'], line: string): void {
    pod.logs.push({ ts: new Date().toISOString(), source, line });
    if (pod.logs.length > MAX_LOG_LINES) pod.logs.splice(0, pod.logs.length - MAX_LOG_LINES);
  }

  #render(pod: PodRecord): Record<string, unknown> {
    const newest = this.#o.schemaMode === 'newest';
    const running = pod.status === 'RUNNING';
    const sshPort = running && pod.sshd && pod.published ? pod.sshd.port : null;
    return {
      id: pod.id,
      name: pod.name,
      image: pod.image,
      args: pod.args,
      ...(newest ? { entrypoint: [...pod.entrypoint], cmd: [...pod.cmd] } : {}),
      disk: pod.disk,
      ports: [...pod.ports],
      env: { ...pod.env },
      registry: pod.registry,
      status: pod.status,
      actions: actionsFor(pod.status),
      mounts: structuredClone(pod.mounts),
      ...(pod.gpu
        ? { gpu: newest ? { ...pod.gpu } : { id: pod.gpu.id, count: pod.gpu.count } }
        : { cpu: { ...(pod.cpu as NonNullable<PodRecord['cpu']>) } }),
      cloud: pod.cloud,
      dataCenterId: pod.dataCenterId,
      cudaVersion: pod.cudaVersion,
      ssh: {
        proxy: {
          host: 'ssh.runpod.io',
          port: 22,
          username: pod.proxyUsername,
          command: `ssh ${pod.proxyUsername}@ssh.runpod.io`,
        },
        direct:
          sshPort === null
            ? null
            : {
                host: '127.0.0.1',
                port: sshPort,
                username: this.#o.sshUser,
                command: `ssh ${this.#o.sshUser}@127.0.0.1 -p ${sshPort}`,
              },
      },
      template: null,
      cost: pod.status === 'EXITED' ? 0 : pod.costPerHr,
      locked: pod.locked,
      globalNetworking: { enabled: pod.globalNetworking },
      runtime:
        running && pod.runtimeVisible
          ? {
              uptime: Math.floor((Date.now() - (pod.runningSinceMs ?? Date.now())) / 1000),
              gpus: Array.from({ length: pod.gpu?.count ?? 0 }, () => ({ util: 0, memoryUtil: 0 })),
              cpu: { util: 1 },
              memory: { util: 2 },
              ports: (pod.published ?? []).map((p) => ({ ...p })),
            }
          : null,
      createdAt: new Date(pod.createdAtMs).toISOString(),
      startedAt: pod.startedAtMs === null ? null : new Date(pod.startedAtMs).toISOString(),
    };
  }
}

/** Legal actions per status, as the spec describes them (not as its 201 example shows). */
export function actionsFor(status: PodStatus): ('start' | 'stop' | 'restart' | 'terminate')[] {
  switch (status) {
    case 'RUNNING':
      return ['stop', 'restart', 'terminate'];
    case 'EXITED':
    case 'ERROR':
      return ['start', 'terminate'];
    case 'PROVISIONING':
    case 'STARTING':
      return ['stop', 'terminate'];
    case 'TERMINATED':
      return [];
  }
}

function insufficientBalance(): ProblemError {
  // Title and detail UNCONFIRMED upstream.
  return new ProblemError(402, 'Insufficient balance.');
}

/** The knobs of a 'pod' fault that its effects read. */
interface PodFaultParams {
  afterMs: number;
  afterLogins: number;
  linkTarget: string;
  oversizeBytes: number;
}

function podFaultParams(f: PodFaultParams): PodFaultParams {
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

function usdFor(costPerHr: number, ms: number): number {
  return round6((costPerHr * ms) / 3_600_000);
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

/** Small seedable PRNG for ids and ports when a seed is given. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
