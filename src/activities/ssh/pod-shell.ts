// What every pod-side system codes against: one SSH session to a pod (PodShell) and what opens one (PodConnector).
import type { SshTarget } from './types.js';

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
  /**
   * How long a ReconnectingPodShell over this connector keeps reconnecting one operation after its first drop, in
   * ms; unset: the shell's default (60 s). Carried here because the connector is what the worker configures once and
   * every pod-side system shares.
   */
  readonly reconnectBudgetMs?: number;
}
