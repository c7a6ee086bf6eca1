// A PodShell that outlives its connection: an operation cut off by a dropped connection reconnects (with backoff) and
// runs again, for as long as its reconnect budget lasts.
import { setTimeout as delay } from 'node:timers/promises';
import type { SshTarget } from './types.js';
import { SshError, SshReconnectBudgetError } from './errors.js';
import type { ExecResult, PodConnector, PodShell } from './pod-shell.js';

/** Backoff before each reconnect of one operation, in ms; past the end the last step repeats until the budget is spent. */
const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 4_000, 8_000] as const;

/**
 * How long one operation keeps reconnecting after its first drop, when neither the options nor the connector say.
 * With a connect timeout of 20 s this stays inside the pod activities' 2-minute heartbeat timeout.
 */
const DEFAULT_RECONNECT_BUDGET_MS = 60_000;

/** A reconnect budget as given, or a RangeError naming it and what is allowed. */
export function checkedBudgetMs(budgetMs: number): number {
  if (!Number.isInteger(budgetMs) || budgetMs < 0) {
    throw new RangeError(`Invalid reconnectBudgetMs: ${budgetMs}. Must be a whole number of ms, 0 or more.`);
  }
  return budgetMs;
}

export interface ReconnectOptions {
  /** Stops the shell: no reconnect starts once it is aborted, and a backoff in progress ends at once. */
  signal?: AbortSignal;
  /** Called on every dropped connection, before the backoff: drops so far on this shell, and the error. */
  onReconnect?: (count: number, cause: SshError) => void;
  /**
   * How long one operation keeps reconnecting after its first drop, in ms, its own retries' running time included
   * (so no operation loops forever: past it, the activity's retry takes over). Default: the connector's
   * `reconnectBudgetMs`, else 60 s. 0: never reconnect.
   */
  reconnectBudgetMs?: number;
}

/**
 * A PodShell that survives a dropped connection: an operation cut off by it reconnects (with backoff) and runs
 * again until its time budget is spent. Safe because every command the pod activities send is idempotent by design
 * (ensure steps; long work runs detached with pid files, so a command run twice re-attaches instead of starting twice).
 * Timeouts, cancellation, a wrong host key and real remote errors are not retried here.
 */
export class ReconnectingPodShell implements PodShell {
  #shell: PodShell | null;
  #reconnects = 0;
  readonly #budgetMs: number;

  private constructor(
    readonly connector: PodConnector,
    readonly target: SshTarget,
    first: PodShell,
    readonly opts: ReconnectOptions,
  ) {
    this.#shell = first;
    this.#budgetMs = checkedBudgetMs(
      opts.reconnectBudgetMs ?? connector.reconnectBudgetMs ?? DEFAULT_RECONNECT_BUDGET_MS,
    );
  }

  /**
   * Connects once (a pod that cannot be reached at all is the caller's retry, not this class's). Every reconnect
   * must present the host key the first connection saw.
   */
  static async open(
    connector: PodConnector,
    target: SshTarget,
    opts: ReconnectOptions = {},
  ): Promise<ReconnectingPodShell> {
    if (opts.reconnectBudgetMs !== undefined) checkedBudgetMs(opts.reconnectBudgetMs); // before connecting
    const first = await connector.connect(target, opts.signal ? { signal: opts.signal } : {});
    return new ReconnectingPodShell(connector, { ...target, hostKeySha256: first.hostKeySha256 }, first, opts);
  }

  /** The host key the connection presented (the same on every reconnect, or the reconnect fails). */
  get hostKeySha256(): string {
    return this.target.hostKeySha256 ?? '';
  }

  /** How many times a connection of this shell dropped under an operation (each one then reconnected or gave up). */
  get reconnects(): number {
    return this.#reconnects;
  }

  exec(command: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ExecResult> {
    return this.#op((sh) => sh.exec(command, opts));
  }

  writeFile(remotePath: string, content: string | Buffer): Promise<void> {
    return this.#op((sh) => sh.writeFile(remotePath, content));
  }

  putFile(localPath: string, remotePath: string): Promise<void> {
    return this.#op((sh) => sh.putFile(localPath, remotePath));
  }

  getFile(remotePath: string, localPath: string): Promise<void> {
    return this.#op((sh) => sh.getFile(remotePath, localPath));
  }

  lstat(remotePath: string): Promise<{ kind: 'file' | 'directory' | 'symlink' | 'other'; bytes: number }> {
    return this.#op((sh) => sh.lstat(remotePath));
  }

  isOpen(): boolean {
    return this.#shell?.isOpen() ?? false;
  }

  close(): void {
    this.#shell?.close();
    this.#shell = null;
  }

  get #where(): string {
    return `${this.target.username}@${this.target.host}:${this.target.port}`;
  }

  async #op<T>(fn: (sh: PodShell) => Promise<T>): Promise<T> {
    // The budget runs from this operation's first failure; the last try starts when it ends, at the latest.
    let failedAt: number | null = null;
    let last: SshError | null = null;
    let retries = 0;
    for (;;) {
      if (last !== null && failedAt !== null) {
        const elapsedMs = Date.now() - failedAt;
        if (elapsedMs >= this.#budgetMs) {
          throw new SshReconnectBudgetError({
            where: this.#where,
            budgetMs: this.#budgetMs,
            elapsedMs,
            reconnects: retries,
            last,
          });
        }
        const stepMs = RECONNECT_BACKOFF_MS[Math.min(retries, RECONNECT_BACKOFF_MS.length - 1)] ?? 0;
        await this.#backoff(Math.min(stepMs, this.#budgetMs - elapsedMs));
        retries += 1;
      }
      let sh: PodShell;
      try {
        sh = this.#shell ?? (await this.#connect());
      } catch (err) {
        // A wrong host key (kind `host-key`) is never retried: another attempt would only talk to the same impostor.
        if (!(err instanceof SshError) || err.kind !== 'connect') throw err;
        failedAt ??= Date.now();
        last = err; // the pod may be back in a moment: keep trying within the budget
        continue;
      }
      try {
        return await fn(sh);
      } catch (err) {
        if (!(err instanceof SshError) || !(await this.#connectionLost(sh, err))) throw err;
        failedAt ??= Date.now();
        sh.close();
        if (this.#shell === sh) this.#shell = null;
        this.#reconnects += 1;
        this.opts.onReconnect?.(this.#reconnects, err);
        last = err;
      }
    }
  }

  /** Waits before a reconnect; cancellation ends the wait, and the operation with it. */
  async #backoff(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, this.opts.signal ? { signal: this.opts.signal } : {});
    } catch {
      throw new SshError(`cancelled while reconnecting to ${this.#where}`, this.#where, 'cancelled');
    }
  }

  async #connect(): Promise<PodShell> {
    this.#shell = await this.connector.connect(this.target, this.opts.signal ? { signal: this.opts.signal } : {});
    return this.#shell;
  }

  /** Whether an error means the connection is gone (so reconnecting may help) rather than a real remote error. */
  async #connectionLost(sh: PodShell, err: SshError): Promise<boolean> {
    if (this.opts.signal?.aborted) return false;
    if (err.kind === 'lost') return true;
    if (err.kind !== 'sftp' && err.kind !== 'channel') return false;
    if (!sh.isOpen()) return true;
    // An SFTP error on a live connection is a real one (no such file, permission); a dead one fails this probe.
    try {
      await sh.exec('true', { timeoutMs: 10_000 });
      return false;
    } catch {
      return true;
    }
  }
}
