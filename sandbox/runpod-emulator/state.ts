// In-memory emulator state: composes pods, capacity, billing, faults and account keys behind the handlers' methods.
import { BillingMeter } from './billing.js';
import type { BillingSnapshot } from './billing.js';
import { ScheduledCapacity } from './capacity.js';
import type { CapacityCell, CapacityModel } from './catalog.js';
import type { ParsedFault } from './control.js';
import { createPod } from './create-pod.js';
import { FaultBook, podFaultParams } from './faults.js';
import type { FaultsSnapshot } from './faults.js';
import type { CallRecord, EmulatorStateOptions, PodInternals } from './model.js';
import { deletePod, getPod, listPods, patchPod, podAction, podLogs } from './pod-api.js';
import type { PodContext } from './pod-api.js';
import { PodFaults } from './pod-faults.js';
import { PodLifecycle } from './pods.js';
import { Randomness } from './random.js';
import { podInternals } from './render.js';
import { validateSshKeysBody } from './validation.js';
import type { SchemaMode } from './validation.js';

export { DEFAULT_TIMELINE, actionsFor } from './model.js';
export type {
  CallRecord,
  EmulatorStateOptions,
  NetworkVolumeSpec,
  PodInternals,
  PodStatus,
  StatusMode,
  TemplateSpec,
  TimelineDelays,
} from './model.js';
export type { BillingPodEntry, BillingSnapshot } from './billing.js';
export type { FaultsSnapshot } from './faults.js';

const MAX_CALLS = 1000;

/** What the request handlers call; every API-visible failure is a thrown ProblemError. */
export class EmulatorState {
  readonly #o: EmulatorStateOptions;
  readonly #capacity: ScheduledCapacity;
  readonly #billing = new BillingMeter();
  readonly #faults: FaultBook;
  readonly #lifecycle: PodLifecycle;
  readonly #podFaults: PodFaults;
  readonly #pods: PodContext;
  #accountKeys: string[];
  readonly #calls: CallRecord[] = [];

  constructor(options: EmulatorStateOptions) {
    this.#o = options;
    this.#accountKeys = [...options.accountSshKeys];
    this.#capacity = new ScheduledCapacity(options.catalog, options.log);
    const faults = new FaultBook(options.catalog);
    const random = new Randomness(options.seed);
    const lifecycle = new PodLifecycle({
      options,
      billing: this.#billing,
      random,
      extraPodEnv: () => faults.extraPodEnv,
    });
    this.#faults = faults;
    this.#lifecycle = lifecycle;
    this.#podFaults = new PodFaults({ options, lifecycle });
    this.#pods = {
      options,
      lifecycle,
      billing: this.#billing,
      faults,
      podFaults: this.#podFaults,
      random,
      accountSshKeys: () => this.#accountKeys,
    };
  }

  get schemaMode(): SchemaMode {
    return this.#o.schemaMode;
  }

  get catalog(): CapacityModel {
    return this.#o.catalog;
  }

  // ---- pods --------------------------------------------------------------------------------------

  /** `POST /v2/pods`. Returns the rendered pod (201). */
  createPod(raw: unknown): Promise<Record<string, unknown>> {
    return createPod(this.#pods, raw);
  }

  /** `GET /v2/pods/{id}`. */
  getPod(id: string): Record<string, unknown> {
    return getPod(this.#pods, id);
  }

  /** `GET /v2/pods`: newest first, keyset cursor, `pagination` only in the newest schema. */
  listPods(query: URLSearchParams): Record<string, unknown> {
    return listPods(this.#pods, query);
  }

  /** `DELETE /v2/pods/{id}`: 204; a second DELETE is 404 unless `secondDelete` says 204. */
  deletePod(id: string): Promise<void> {
    return deletePod(this.#pods, id);
  }

  /** `POST /v2/pods/{id}/action`: the pod (200) for start/stop/restart, undefined (204) for terminate. */
  podAction(id: string, raw: unknown): Promise<Record<string, unknown> | undefined> {
    return podAction(this.#pods, id, raw);
  }

  /** `PATCH /v2/pods/{id}`: partial merge; a change to what the container runs restarts a running pod. */
  patchPod(id: string, raw: unknown): Promise<Record<string, unknown>> {
    return patchPod(this.#pods, id, raw);
  }

  /** `GET /v2/pods/{id}/logs`: the pod's log as one server-sent-events body (no follow). */
  podLogs(id: string, query: URLSearchParams, lastEventId: string | undefined): string {
    return podLogs(this.#pods, id, query, lastEventId);
  }

  /** The pod a pod-scoped API key belongs to, or null for any other token. */
  podForKey(token: string): string | null {
    return this.#lifecycle.podForKey(token);
  }

  // ---- capacity ----------------------------------------------------------------------------------

  /** Sets capacity now, or `afterMs` from now. Cells are checked at once either way. */
  setCapacity(update: { cells: CapacityCell[]; replace: boolean; afterMs: number }): void {
    this.#capacity.set(update);
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
    return this.#faults.isForbidden(apiKey);
  }

  /** Applies one (already parsed) fault. @throws Error for a podId that does not exist. */
  injectFault(fault: ParsedFault): void {
    if (fault.type === 'pod' && fault.podId !== undefined) {
      const pod = this.#lifecycle.get(fault.podId);
      if (!pod) throw new Error(`no pod ${fault.podId}`);
      this.#podFaults.apply(pod, fault.effect, podFaultParams(fault));
      return;
    }
    this.#faults.inject(fault);
  }

  /** Consumes one storm response for this request, if one matches. */
  takeStorm(method: string, path: string): FaultsSnapshot['storms'][number] | null {
    return this.#faults.takeStorm(method, path);
  }

  /** Consumes one latency injection for this request, if one matches. */
  takeLatency(method: string, path: string): FaultsSnapshot['latency'][number] | null {
    return this.#faults.takeLatency(method, path);
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
    return this.#billing.snapshot();
  }

  pods(): PodInternals[] {
    return this.#lifecycle.newestFirst().map(podInternals);
  }

  faults(): FaultsSnapshot {
    return this.#faults.snapshot();
  }

  accountSshKeys(): string[] {
    return [...this.#accountKeys];
  }

  /** Stops every timer and every pod's processes; billing stops accruing. Pods stay listed in state(). */
  async close(): Promise<void> {
    const now = Date.now();
    this.#lifecycle.close();
    this.#capacity.stop();
    this.#billing.stop(now);
    await this.#o.sshd.stopAll();
  }
}
