// RunPod REST v2 emulator: start it in-process with startRunPodEmulator(), or run main.ts standalone.
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { CapacityModel } from './catalog.js';
import type { CapacityCell, CpuFlavorSpec, DataCenterSpec, GpuTypeSpec } from './catalog.js';
import { CapacityUpdateSchema, FaultSchema, RateLimitsUpdateSchema } from './control.js';
import type { CapacityUpdate, Fault, RateLimitsUpdate } from './control.js';
import { RateLimiter } from './rate-limit.js';
import type { RateLimitQuotas } from './rate-limit.js';
import { createRequestHandler } from './server.js';
import {
  DEFAULT_SSHD_PATH,
  DEFAULT_SSH_KEYGEN_PATH,
  SshdManager,
  assertOpenSshInstalled,
  cleanupStalePods,
} from './sshd.js';
import { DEFAULT_TIMELINE, EmulatorState } from './state.js';
import type {
  BillingSnapshot,
  CallRecord,
  FaultsSnapshot,
  NetworkVolumeSpec,
  PodInternals,
  StatusMode,
  TemplateSpec,
  TimelineDelays,
} from './state.js';
import type { SchemaMode } from './validation.js';

export interface RunPodEmulatorOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Holds `pods/<id>/` (sshd config, host key, authorized_keys, workspace). Default: a temp dir removed on close. */
  dataDir?: string;
  /** Accepted API keys. Default: any non-empty bearer token. */
  apiKeys?: string[];
  /** 'newest' (default) or 'strict-2.9' (no min*PerGpu/entrypoint/cmd, no pagination). */
  schemaMode?: SchemaMode;
  /** 'spec' (default): PROVISIONING -> STARTING -> RUNNING. 'observed': RUNNING from creation. */
  statusMode?: StatusMode;
  timeline?: Partial<TimelineDelays>;
  /** Whether PROVISIONING/STARTING accrue cost. Default true. */
  billProvisioning?: boolean;
  /** Per-key quotas; defaults are the spec's examples (60/min, 3000/h, 50000/day). */
  rateLimits?: Partial<RateLimitQuotas>;
  /** Prepended to PATH in every pod's SSH sessions (e.g. the sandbox's bin dirs). */
  podPathPrefix?: string;
  /** Extra SSH-session environment for every pod, e.g. `{ HF_ENDPOINT: 'http://127.0.0.1:9000' }`. */
  podEnv?: Record<string, string>;
  templates?: Record<string, TemplateSpec>;
  networkVolumes?: NetworkVolumeSpec[];
  /** Initial `/v2/account/ssh-keys` (used by `startSsh`). */
  accountSshKeys?: string[];
  /** Second DELETE of a pod: 404 (default, spec) or 204. */
  secondDelete?: 'not-found' | 'no-content';
  /** Unrouted /v2 paths: 404 (default) or the beta host's 422. */
  unknownRoute?: 'not-found' | 'beta-422';
  /** Unknown gpu.id on create: no-capacity 400 (default) or 422. */
  unknownGpu?: 'no-capacity' | 'validation';
  gpuTypes?: GpuTypeSpec[];
  dataCenters?: DataCenterSpec[];
  cpuFlavors?: CpuFlavorSpec[];
  /** Initial free GPUs per (type, DC, cloud). Default: a few cells per type. */
  capacity?: CapacityCell[];
  /** Container disk (GB) when neither body nor template sets one. Default 20. */
  defaultDiskGb?: number;
  /** Seeds pod ids and port numbers. */
  seed?: number;
  sshdPath?: string;
  sshKeygenPath?: string;
  /** Diagnostic lines; default silent. */
  log?: (line: string) => void;
}

export interface EmulatorSnapshot {
  pods: PodInternals[];
  billing: BillingSnapshot;
  capacity: CapacityCell[];
  faults: FaultsSnapshot;
  accountSshKeys: string[];
  rateLimits: RateLimitQuotas;
  /** The last 200 /v2 requests. */
  calls: CallRecord[];
}

export interface RunPodEmulator {
  /** Base URL for clients, ending in `/v2`. */
  readonly url: string;
  /** Base of the control API, ending in `/_control`. */
  readonly controlUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** Everything `GET /_control/state` returns. */
  state(): EmulatorSnapshot;
  /** Billing meter: per pod and overall, deleted pods included. */
  billing(): BillingSnapshot;
  /** Live pods with their sshd pid/port and directories. */
  pods(): PodInternals[];
  /** Every /v2 request seen (most recent 1000). */
  calls(): CallRecord[];
  /** Same as `POST /_control/capacity` (now, or `afterMs` from now). @throws on an unknown GPU type or data center. */
  setCapacity(update: CapacityUpdate): void;
  /** Same as `POST /_control/faults` with one fault. */
  injectFault(fault: Fault): void;
  clearFaults(): void;
  /** Same as `POST /_control/rate-limits`. */
  setRateLimits(update: RateLimitsUpdate): void;
  /** Stops the server, every pod's sshd and processes, and all timers. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the emulator on 127.0.0.1. Fails when OpenSSH (sshd, ssh-keygen) is missing.
 * Leftover pod directories and processes of a previous run with the same dataDir are cleaned up first.
 */
export async function startRunPodEmulator(options: RunPodEmulatorOptions = {}): Promise<RunPodEmulator> {
  const log = options.log ?? (() => undefined);
  const sshdPath = options.sshdPath ?? DEFAULT_SSHD_PATH;
  const sshKeygenPath = options.sshKeygenPath ?? DEFAULT_SSH_KEYGEN_PATH;
  await assertOpenSshInstalled({ sshdPath, sshKeygenPath });

  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ? resolve(options.dataDir) : await mkdtemp(join(tmpdir(), 'runpod-emulator-'));
  await mkdir(join(dataDir, 'pods'), { recursive: true });
  await cleanupStalePods(join(dataDir, 'pods'), log);

  const catalog = new CapacityModel({
    gpuTypes: options.gpuTypes,
    dataCenters: options.dataCenters,
    cpuFlavors: options.cpuFlavors,
    capacity: options.capacity,
    unknownGpu: options.unknownGpu,
  });
  const sshd = new SshdManager({ sshdPath, sshKeygenPath, log });
  const state = new EmulatorState({
    dataDir,
    schemaMode: options.schemaMode ?? 'newest',
    statusMode: options.statusMode ?? 'spec',
    timeline: { ...DEFAULT_TIMELINE, ...options.timeline },
    billProvisioning: options.billProvisioning ?? true,
    podPathPrefix: options.podPathPrefix ?? '',
    podEnv: options.podEnv ?? {},
    templates: options.templates ?? {},
    networkVolumes: options.networkVolumes ?? [],
    accountSshKeys: options.accountSshKeys ?? [],
    secondDelete: options.secondDelete ?? 'not-found',
    defaultDiskGb: options.defaultDiskGb ?? 20,
    sshUser: userInfo().username,
    seed: options.seed,
    catalog,
    sshd,
    sshKeygenPath,
    log,
  });
  const rateLimiter = new RateLimiter({ quotas: options.rateLimits });

  let baseUrl = '';
  const snapshot = (): EmulatorSnapshot => ({
    pods: state.pods(),
    billing: state.billing(),
    capacity: catalog.capacity(),
    faults: state.faults(),
    accountSshKeys: state.accountSshKeys(),
    rateLimits: rateLimiter.quotas,
    calls: state.calls().slice(-200),
  });
  const server = createServer(
    createRequestHandler({
      state,
      rateLimiter,
      apiKeys: options.apiKeys ? new Set(options.apiKeys) : null,
      unknownRoute: options.unknownRoute ?? 'not-found',
      baseUrl: () => baseUrl,
      snapshot,
      applyFault: (f) => state.injectFault(f),
      log,
    }),
  );
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', fail);
      ok();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  baseUrl = `http://127.0.0.1:${port}/v2`;

  // A crashed or exiting test process must not leave sshd (and pod processes) behind.
  const onExit = (): void => {
    sshd.killAllSync();
    if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      process.off('exit', onExit);
      await state.close();
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    })();
    return closing;
  };

  return {
    url: baseUrl,
    controlUrl: `http://127.0.0.1:${port}/_control`,
    port,
    dataDir,
    state: snapshot,
    billing: () => state.billing(),
    pods: () => state.pods(),
    calls: () => state.calls(),
    setCapacity: (update) => state.setCapacity(CapacityUpdateSchema.parse(update)),
    injectFault: (fault) => state.injectFault(FaultSchema.parse(fault)),
    clearFaults: () => state.injectFault({ type: 'clear' }),
    setRateLimits: (update) => {
      const { reset, ...quotas } = RateLimitsUpdateSchema.parse(update);
      const defined = Object.fromEntries(Object.entries(quotas).filter(([, v]) => v !== undefined));
      rateLimiter.configure(defined, { reset });
    },
    close,
  };
}

export { DEFAULT_TIMELINE } from './state.js';
export { DEFAULT_GPU_TYPES, DEFAULT_DATA_CENTERS, DEFAULT_CPU_FLAVORS, DEFAULT_CAPACITY } from './catalog.js';
export { DEFAULT_RATE_LIMITS } from './rate-limit.js';
export { NO_CAPACITY_DETAIL, VALIDATION_DETAIL } from './problems.js';
export { MAX_BODY_BYTES } from './server.js';
export type {
  BillingSnapshot,
  BillingPodEntry,
  CallRecord,
  FaultsSnapshot,
  NetworkVolumeSpec,
  PodInternals,
  PodStatus,
  StatusMode,
  TemplateSpec,
  TimelineDelays,
} from './state.js';
export type { CapacityCell, CpuFlavorSpec, DataCenterSpec, GpuTypeSpec, Cloud } from './catalog.js';
export type { CapacityUpdate, Fault, RateLimitsUpdate, PodFaultEffect } from './control.js';
export type { RateLimitQuotas } from './rate-limit.js';
export type { SchemaMode } from './validation.js';
