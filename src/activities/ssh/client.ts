// SSH exec and SFTP to a pod (RunPod's `ssh.direct`, the team's own server, or a sandbox sshd), over ssh2.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import type { SshTarget } from './types.js';
import { HostKeyMismatchError, SshError } from './errors.js';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One authenticated connection to a pod. Close it when done. */
export interface PodShell {
  /**
   * Runs a command through the login shell's `sh -c`; resolves with its exit code (never throws on non-zero).
   * @throws SshError of kind `lost` when the connection drops before the command's exit status arrives.
   */
  exec(command: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<ExecResult>;
  /** Writes `content` to `remotePath` over SFTP (parent directories must exist). */
  writeFile(remotePath: string, content: string | Buffer): Promise<void>;
  /** Copies a local file to the pod over SFTP. */
  putFile(localPath: string, remotePath: string): Promise<void>;
  /** Copies a pod file to a local path over SFTP. */
  getFile(remotePath: string, localPath: string): Promise<void>;
  /** What `remotePath` itself is (SFTP lstat: a symlink is reported, never followed) and its size in bytes. */
  lstat(remotePath: string): Promise<{ kind: 'file' | 'directory' | 'symlink' | 'other'; bytes: number }>;
  /** False once the connection has closed (dropped, or closed by us). */
  isOpen(): boolean;
  /** The host key the server presented, OpenSSH style (`SHA256:...`, as `ssh-keygen -lf` prints it). */
  readonly hostKeySha256: string;
  close(): void;
}

export interface ConnectOptions {
  signal?: AbortSignal;
  /**
   * Accept whatever host key the server presents (and report it in `hostKeySha256`) when the target has no pin.
   * Only the readiness check of a freshly created pod asks for this: it records the key every later connection
   * must present.
   */
  trustOnFirstUse?: boolean;
}

export interface PodConnector {
  /**
   * Connects and logs in. The server must present `target.hostKeySha256`; a target without a pin is refused unless
   * `opts.trustOnFirstUse` is set.
   * @throws HostKeyMismatchError (an SshError of kind `host-key`) for a wrong or missing pin; never worth a retry.
   */
  connect(target: SshTarget, opts?: ConnectOptions): Promise<PodShell>;
}

/** OpenSSH's fingerprint of a public key blob (the SSH wire format): `SHA256:` + base64 without padding. */
export function hostKeyFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named at the start of a public key blob (`ssh-ed25519`, `ssh-rsa`...), for error messages. */
function keyType(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  return len > 0 && len < 64 && keyBlob.length >= 4 + len ? keyBlob.subarray(4, 4 + len).toString('latin1') : 'unknown';
}

/** Connects with the worker's private key; the key never leaves the worker. */
export class SshPodConnector implements PodConnector {
  readonly #privateKey: Buffer;
  readonly #connectTimeoutMs: number;

  constructor(opts: { privateKeyPath: string; connectTimeoutMs: number }) {
    this.#privateKey = readFileSync(opts.privateKeyPath);
    this.#connectTimeoutMs = opts.connectTimeoutMs;
  }

  connect(target: SshTarget, opts: ConnectOptions = {}): Promise<PodShell> {
    const hostPort = `${target.host}:${target.port}`;
    const pinned = target.hostKeySha256;
    if (pinned === undefined && !opts.trustOnFirstUse) {
      return Promise.reject(new HostKeyMismatchError({ hostPort, expected: null, presented: null }));
    }
    return new Promise((resolve, reject) => {
      const client = new Client();
      const where = `${target.username}@${hostPort}`;
      let presented = '';
      const onAbort = () => {
        client.end();
        reject(new SshError(`connection to ${where} cancelled`, where, 'cancelled'));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      client
        .on('ready', () => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(new Ssh2Shell(client, where, presented));
        })
        .on('error', (err) => {
          opts.signal?.removeEventListener('abort', onAbort);
          reject(new SshError(`ssh ${where}: ${err.message}`, where, 'connect'));
        })
        // A connection cut during the handshake can end with 'close' alone; without this the promise never settles.
        .on('close', () => {
          opts.signal?.removeEventListener('abort', onAbort);
          reject(new SshError(`ssh ${where}: connection closed during the handshake`, where, 'connect'));
        })
        .connect({
          host: target.host,
          port: target.port,
          username: target.username,
          privateKey: this.#privateKey,
          readyTimeout: this.#connectTimeoutMs,
          keepaliveInterval: 15_000,
          // Pods are created with fresh host keys that cannot be known in advance: the readiness check trusts the
          // first key it sees and pins it, and every later connection must present that same key (or, for the
          // team's own server, the one configured in the study). A settled promise ignores the later 'error'.
          hostVerifier: (key: Buffer) => {
            presented = hostKeyFingerprint(key);
            if (pinned === undefined || presented === pinned) return true;
            opts.signal?.removeEventListener('abort', onAbort);
            reject(new HostKeyMismatchError({ hostPort, expected: pinned, presented, keyType: keyType(key) }));
            return false;
          },
        });
    });
  }
}

class Ssh2Shell implements PodShell {
  #sftp: Promise<SFTPWrapper> | undefined;
  #open = true;
  /** Settles when the connection goes away: SFTP requests in flight then never get an answer from ssh2. */
  readonly #closed: Promise<never>;

  constructor(
    readonly client: Client,
    readonly where: string,
    readonly hostKeySha256: string,
  ) {
    let onClosed: () => void = () => undefined;
    this.#closed = new Promise<never>((_, reject) => {
      onClosed = () => reject(new SshError(`connection to ${where} lost during an SFTP transfer`, where, 'lost'));
    });
    this.#closed.catch(() => undefined); // observed only by operations in flight
    const closed = () => {
      this.#open = false;
      onClosed();
    };
    client.on('close', closed).on('end', closed).on('error', closed);
  }

  /** An SFTP operation that fails with a `lost` SshError if the connection drops before ssh2 answers. */
  #sftpOp(op: (sftp: SFTPWrapper, done: (err: Error | null | undefined) => void) => void, what: string) {
    if (!this.#open) {
      return Promise.reject(new SshError(`${what} on ${this.where}: not connected`, this.where, 'lost'));
    }
    const run = this.#sftpSession().then(
      (sftp) =>
        new Promise<void>((resolve, reject) =>
          op(sftp, (err) =>
            err ? reject(new SshError(`${what}: ${err.message}`, this.where, this.#open ? 'sftp' : 'lost')) : resolve(),
          ),
        ),
    );
    return Promise.race([run, this.#closed]);
  }

  isOpen(): boolean {
    return this.#open;
  }

  exec(command: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const onChannel = (err: Error | undefined, channel: ClientChannel) => {
        if (err) {
          const kind = this.#open ? 'channel' : 'lost';
          return reject(new SshError(`exec on ${this.where}: ${err.message}`, this.where, kind));
        }
        let stdout = '';
        let stderr = '';
        let exitCode: number | null = null;
        let exited = false;
        let settled = false;
        const finish = (fn: () => void) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
          fn();
        };
        const onAbort = () => {
          channel.close();
          finish(() => reject(new SshError(`command cancelled on ${this.where}`, this.where, 'cancelled')));
        };
        const timer = opts.timeoutMs
          ? setTimeout(() => {
              channel.close();
              finish(() =>
                reject(
                  new SshError(`command timed out after ${opts.timeoutMs} ms on ${this.where}`, this.where, 'timeout'),
                ),
              );
            }, opts.timeoutMs)
          : undefined;
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        channel.on('data', (d: Buffer) => (stdout += d.toString()));
        channel.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        // 'exit' carries the status (a signal-killed command has no code); 'close' comes after all output.
        // OpenSSH always reports exit-status or exit-signal, so a channel that closes without one was cut off.
        channel.on('exit', (code: number | null) => {
          exited = true;
          exitCode = code;
        });
        channel.on('close', () =>
          finish(() =>
            exited
              ? resolve({ code: exitCode, stdout, stderr })
              : reject(new SshError(`connection to ${this.where} lost during a command`, this.where, 'lost')),
          ),
        );
      };
      try {
        this.client.exec(command, onChannel);
      } catch (err) {
        // ssh2 throws synchronously when the connection is already gone (pod terminated, network drop).
        reject(new SshError(`exec on ${this.where}: ${(err as Error).message}`, this.where, 'lost'));
      }
    });
  }

  #sftpSession(): Promise<SFTPWrapper> {
    this.#sftp ??= new Promise((resolve, reject) => {
      const fail = (err: Error) =>
        reject(new SshError(`sftp on ${this.where}: ${err.message}`, this.where, this.#open ? 'sftp' : 'lost'));
      try {
        this.client.sftp((err, sftp) => (err ? fail(err) : resolve(sftp)));
      } catch (err) {
        fail(err as Error); // ssh2 throws synchronously once the connection is gone
      }
    });
    return this.#sftp;
  }

  writeFile(remotePath: string, content: string | Buffer): Promise<void> {
    return this.#sftpOp((sftp, done) => sftp.writeFile(remotePath, content, done), `sftp write ${remotePath}`);
  }

  putFile(localPath: string, remotePath: string): Promise<void> {
    return this.#sftpOp((sftp, done) => sftp.fastPut(localPath, remotePath, done), `sftp put ${remotePath}`);
  }

  getFile(remotePath: string, localPath: string): Promise<void> {
    return this.#sftpOp((sftp, done) => sftp.fastGet(remotePath, localPath, done), `sftp get ${remotePath}`);
  }

  async lstat(remotePath: string): Promise<{ kind: 'file' | 'directory' | 'symlink' | 'other'; bytes: number }> {
    let stat: { kind: 'file' | 'directory' | 'symlink' | 'other'; bytes: number } = { kind: 'other', bytes: 0 };
    await this.#sftpOp(
      (sftp, done) =>
        sftp.lstat(remotePath, (err, s) => {
          if (!err) {
            const kind = s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
            stat = { kind, bytes: s.size };
          }
          done(err);
        }),
      `sftp lstat ${remotePath}`,
    );
    return stat;
  }

  close(): void {
    this.#open = false;
    this.client.end();
  }
}

/** Backoff before each reconnect, in ms; its length is the most reconnects one operation gets. */
const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 4_000, 8_000];

/**
 * A PodShell that survives a dropped connection: an operation cut off by it reconnects (with backoff) and runs
 * again. Safe because every command the pod activities send is idempotent by design (ensure steps; long work runs
 * detached with pid files, so a command run twice re-attaches instead of starting twice). Timeouts, cancellation
 * and real remote errors are not retried here.
 */
export class ReconnectingPodShell implements PodShell {
  #shell: PodShell | null;
  #reconnects = 0;

  private constructor(
    readonly connector: PodConnector,
    readonly target: SshTarget,
    first: PodShell,
    readonly opts: { signal?: AbortSignal; onReconnect?: (count: number, cause: SshError) => void },
  ) {
    this.#shell = first;
  }

  /**
   * Connects once (a pod that cannot be reached at all is the caller's retry, not this class's). Every reconnect
   * must present the host key the first connection saw.
   */
  static async open(
    connector: PodConnector,
    target: SshTarget,
    opts: { signal?: AbortSignal; onReconnect?: (count: number, cause: SshError) => void } = {},
  ): Promise<ReconnectingPodShell> {
    const first = await connector.connect(target, opts.signal ? { signal: opts.signal } : {});
    return new ReconnectingPodShell(connector, { ...target, hostKeySha256: first.hostKeySha256 }, first, opts);
  }

  /** The host key the connection presented (the same on every reconnect, or the reconnect fails). */
  get hostKeySha256(): string {
    return this.target.hostKeySha256 ?? '';
  }

  /** How many times a dropped connection was replaced. */
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

  async #op<T>(fn: (sh: PodShell) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt <= RECONNECT_BACKOFF_MS.length; attempt++) {
      if (attempt > 0) {
        try {
          await delay(
            RECONNECT_BACKOFF_MS[attempt - 1],
            undefined,
            this.opts.signal ? { signal: this.opts.signal } : {},
          );
        } catch {
          const where = `${this.target.username}@${this.target.host}:${this.target.port}`;
          throw new SshError(`cancelled while reconnecting to ${where}`, where, 'cancelled');
        }
      }
      let sh: PodShell;
      try {
        sh = this.#shell ?? (await this.#connect());
      } catch (err) {
        // A wrong host key (kind `host-key`) is never retried: another attempt would only talk to the same impostor.
        if (!(err instanceof SshError) || err.kind !== 'connect') throw err;
        last = err; // the pod may be back in a moment: keep trying within the backoff
        continue;
      }
      try {
        return await fn(sh);
      } catch (err) {
        if (!(err instanceof SshError) || !(await this.#connectionLost(sh, err))) throw err;
        sh.close();
        if (this.#shell === sh) this.#shell = null;
        this.#reconnects += 1;
        this.opts.onReconnect?.(this.#reconnects, err);
        last = err;
      }
    }
    throw last;
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
