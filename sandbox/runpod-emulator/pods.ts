// Live pods and their state machine: the registry, the status timeline, sshd start/restart, interrupt and destroy.
import { rm } from 'node:fs/promises';
import { isBillable } from './billing.js';
import type { BillingMeter } from './billing.js';
import { hostileBinDir } from './hostile.js';
import type { EmulatorStateOptions, LogLine, PodRecord, PodStatus, PortMapping } from './model.js';
import { notFound } from './problems.js';
import type { Randomness } from './random.js';
import { podPaths } from './sshd.js';
import type { SshdHandle, SshdStartInput } from './sshd.js';

const MAX_LOG_LINES = 5000;

export interface PodLifecycleDeps {
  options: EmulatorStateOptions;
  billing: BillingMeter;
  random: Randomness;
  /** Session environment from 'pod-env' faults, read whenever an sshd (re)starts. */
  extraPodEnv: () => Record<string, string>;
}

export class PodLifecycle {
  readonly #o: EmulatorStateOptions;
  readonly #billing: BillingMeter;
  readonly #random: Randomness;
  readonly #extraPodEnv: () => Record<string, string>;
  readonly #pods = new Map<string, PodRecord>();
  /** Ids of deleted pods: never reused, and a second DELETE may answer 204. */
  readonly #terminated = new Set<string>();
  /** Pod-scoped API key -> pod id, for live pods only. */
  readonly #podKeys = new Map<string, string>();
  #seq = 0;
  #closed = false;

  constructor(deps: PodLifecycleDeps) {
    this.#o = deps.options;
    this.#billing = deps.billing;
    this.#random = deps.random;
    this.#extraPodEnv = deps.extraPodEnv;
  }

  // ---- registry ----------------------------------------------------------------------------------

  /** A fresh pod id (never one in use or deleted). */
  newId(): string {
    return this.#random.podId((id) => this.#pods.has(id) || this.#terminated.has(id));
  }

  nextSeq(): number {
    return ++this.#seq;
  }

  add(pod: PodRecord): void {
    this.#pods.set(pod.id, pod);
    this.#podKeys.set(pod.apiKey, pod.id);
  }

  get(id: string): PodRecord | undefined {
    return this.#pods.get(id);
  }

  /** @throws ProblemError 404 for a pod that is not live. */
  require(id: string): PodRecord {
    const pod = this.#pods.get(id);
    if (!pod) throw notFound('pod');
    return pod;
  }

  wasTerminated(id: string): boolean {
    return this.#terminated.has(id);
  }

  /** Live pods, newest first. */
  newestFirst(): PodRecord[] {
    return [...this.#pods.values()].sort((a, b) => b.seq - a.seq);
  }

  /** The pod a pod-scoped API key belongs to, or null for any other token. */
  podForKey(token: string): string | null {
    return this.#podKeys.get(token) ?? null;
  }

  /** Whether this very pod is still live and the emulator open (late fault steps check it). */
  isCurrent(pod: PodRecord): boolean {
    return this.#pods.get(pod.id) === pod && !this.#closed;
  }

  // ---- state machine -----------------------------------------------------------------------------

  runTimeline(pod: PodRecord, from: 'PROVISIONING' | 'STARTING'): void {
    const gen = pod.generation;
    const t = this.#o.timeline;
    if (this.#o.statusMode === 'observed') {
      this.enterRunning(pod, gen);
      return;
    }
    if (from === 'PROVISIONING') {
      this.setStatus(pod, 'PROVISIONING');
      this.#schedule(pod, gen, t.provisioningDelayMs, () => this.runTimeline(pod, 'STARTING'));
      return;
    }
    this.setStatus(pod, 'STARTING');
    this.#schedule(pod, gen, t.startingDelayMs, () => this.enterRunning(pod, gen));
  }

  enterRunning(pod: PodRecord, gen: number): void {
    const now = Date.now();
    pod.startedAtMs = now;
    pod.runningSinceMs = now;
    this.setStatus(pod, 'RUNNING');
    podLog(pod, 'system', `pulling image ${pod.image}`);
    this.#schedule(pod, gen, this.#o.timeline.imagePullDelayMs, () => {
      pod.runtimeVisible = true;
      podLog(pod, 'container', 'container started');
      this.#schedule(pod, gen, this.#o.timeline.portDelayMs, () => this.#publishPorts(pod, gen));
    });
  }

  setStatus(pod: PodRecord, status: PodStatus): void {
    pod.status = status;
    this.#billing.setAccruing(pod.id, isBillable(status, this.#o.billProvisioning));
  }

  /** Cancels the running timeline and kills the pod's sshd (and what runs in it). */
  async interrupt(pod: PodRecord): Promise<void> {
    pod.generation++;
    for (const t of pod.timers) clearTimeout(t);
    pod.timers.clear();
    pod.runtimeVisible = false;
    pod.published = null;
    const sshd = pod.sshd;
    pod.sshd = null;
    if (sshd) await this.#o.sshd.stop(sshd);
  }

  async destroy(pod: PodRecord, why: 'terminated' | 'vanished'): Promise<void> {
    // Gone from the API and the meter at once; process and directory cleanup follow.
    this.#pods.delete(pod.id);
    this.#podKeys.delete(pod.apiKey);
    this.#terminated.add(pod.id);
    this.#billing.close(pod.id, true);
    this.releaseGpus(pod);
    for (const t of pod.faultTimers) clearTimeout(t);
    pod.faultTimers.clear();
    pod.status = 'TERMINATED';
    await this.interrupt(pod);
    await rm(pod.dir, { recursive: true, force: true });
    this.#o.log(`pod ${pod.id} ${why}`);
  }

  releaseGpus(pod: PodRecord): void {
    if (pod.holdsGpus && pod.gpu && pod.cellKey) this.#o.catalog.release(pod.cellKey, pod.gpu.count);
    pod.holdsGpus = false;
  }

  /**
   * Restarts the pod's sshd listener in place (same port; connections and pod processes live on) so it picks up the
   * pod directory's host key and the current session environment. False when the pod moved on meanwhile.
   */
  async restartSshd(pod: PodRecord, why: string): Promise<boolean> {
    const old = pod.sshd;
    if (!old) return false;
    const gen = pod.generation;
    const next = await this.#o.sshd.restart(old, this.#sshdInput(pod));
    if (this.#stale(pod, gen) || pod.sshd !== old) {
      await this.#o.sshd.stop(next);
      return false;
    }
    pod.sshd = next;
    podLog(pod, 'system', `sshd restarted in place on 127.0.0.1:${next.port} (${why}; fault)`);
    return true;
  }

  /** Marks the emulator closed and cancels every pod's timers; sshd processes are the caller's to stop. */
  close(): void {
    this.#closed = true;
    for (const pod of this.#pods.values()) {
      pod.generation++;
      for (const t of [...pod.timers, ...pod.faultTimers]) clearTimeout(t);
      pod.timers.clear();
      pod.faultTimers.clear();
      pod.sshd = null;
    }
  }

  // ---- internals ---------------------------------------------------------------------------------

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

  async #publishPorts(pod: PodRecord, gen: number): Promise<void> {
    if (pod.faults.noPorts) {
      podLog(pod, 'system', 'no ports assigned (fault)');
      return;
    }
    if (pod.ports.includes('22/tcp')) {
      let handle: SshdHandle;
      try {
        handle = await this.#o.sshd.start(this.#sshdInput(pod));
      } catch (err) {
        if (this.#stale(pod, gen)) return;
        this.#o.log(`pod ${pod.id}: ${String(err)}`);
        podLog(pod, 'system', `sshd failed to start: ${String(err)}`);
        this.setStatus(pod, 'ERROR');
        return;
      }
      if (this.#stale(pod, gen)) {
        await this.#o.sshd.stop(handle);
        return;
      }
      pod.sshd = handle;
      podLog(pod, 'container', `sshd listening on 127.0.0.1:${handle.port}`);
    }
    pod.published = pod.ports.map((spec): PortMapping => {
      const [portText = '', type = 'tcp'] = spec.split('/');
      const priv = Number(portText);
      if (type === 'http') {
        return {
          private: priv,
          public: this.#random.int(10_000, 65_000),
          type,
          ip: `100.65.${this.#random.int(0, 255)}.${this.#random.int(1, 254)}`,
        };
      }
      const pub = priv === 22 && pod.sshd ? pod.sshd.port : this.#random.int(10_000, 65_000);
      return { private: priv, public: pub, type, ip: '127.0.0.1' };
    });
  }

  /** What the pod's sshd starts with, faults included; the same for a first start and a restart in place. */
  #sshdInput(pod: PodRecord): SshdStartInput {
    return {
      podId: pod.id,
      dir: pod.dir,
      authorizedKeys: pod.faults.sshdRefuses ? '' : pod.authorizedKeys,
      env: this.#sessionEnv(pod),
      sftp: !pod.faults.sftpBroken,
    };
  }

  /** Session environment for sshd's SetEnv, lowest precedence first. */
  #sessionEnv(pod: PodRecord): [string, string][] {
    const path = [pod.hostile ? hostileBinDir(pod.dir) : '', this.#o.podPathPrefix, '/usr/local/bin:/usr/bin:/bin']
      .filter((s) => s !== '')
      .join(':');
    return [
      ...Object.entries({ ...this.#o.podEnv, ...this.#extraPodEnv() }).filter(([, v]) => v !== ''),
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
}

/** Appends to the pod's log (what `GET /v2/pods/{id}/logs` serves), keeping the newest lines. */
export function podLog(pod: PodRecord, source: LogLine['source'], line: string): void {
  pod.logs.push({ ts: new Date().toISOString(), source, line });
  if (pod.logs.length > MAX_LOG_LINES) pod.logs.splice(0, pod.logs.length - MAX_LOG_LINES);
}
