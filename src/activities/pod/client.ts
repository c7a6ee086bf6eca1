// SSH exec and SFTP to a pod (RunPod's `ssh.direct`, the team's own server, or a sandbox sshd), over ssh2.
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import type { SshTarget } from '../../shared/types.js';
import { SshError } from './errors.js';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One authenticated connection to a pod. Close it when done. */
export interface PodShell {
  /** Runs a command through the login shell's `sh -c`; resolves with its exit code (never throws on non-zero). */
  exec(command: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<ExecResult>;
  /** Writes `content` to `remotePath` over SFTP (parent directories must exist). */
  writeFile(remotePath: string, content: string | Buffer): Promise<void>;
  /** Copies a local file to the pod over SFTP. */
  putFile(localPath: string, remotePath: string): Promise<void>;
  /** Copies a pod file to a local path over SFTP. */
  getFile(remotePath: string, localPath: string): Promise<void>;
  close(): void;
}

export interface PodConnector {
  connect(target: SshTarget, opts?: { signal?: AbortSignal }): Promise<PodShell>;
}

/** Connects with the worker's private key; the key never leaves the worker. */
export class SshPodConnector implements PodConnector {
  readonly #privateKey: Buffer;
  readonly #connectTimeoutMs: number;

  constructor(opts: { privateKeyPath: string; connectTimeoutMs: number }) {
    this.#privateKey = readFileSync(opts.privateKeyPath);
    this.#connectTimeoutMs = opts.connectTimeoutMs;
  }

  connect(target: SshTarget, opts: { signal?: AbortSignal } = {}): Promise<PodShell> {
    return new Promise((resolve, reject) => {
      const client = new Client();
      const where = `${target.username}@${target.host}:${target.port}`;
      const onAbort = () => {
        client.end();
        reject(new SshError(`connection to ${where} cancelled`, where));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      client
        .on('ready', () => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(new Ssh2Shell(client, where));
        })
        .on('error', (err) => {
          opts.signal?.removeEventListener('abort', onAbort);
          reject(new SshError(`ssh ${where}: ${err.message}`, where));
        })
        .connect({
          host: target.host,
          port: target.port,
          username: target.username,
          privateKey: this.#privateKey,
          readyTimeout: this.#connectTimeoutMs,
          keepaliveInterval: 15_000,
          // Pods are created with fresh host keys that cannot be known in advance; the pod's identity comes
          // from the RunPod API (id -> ssh.direct), and only key authentication is offered.
          hostVerifier: () => true,
        });
    });
  }
}

class Ssh2Shell implements PodShell {
  #sftp: Promise<SFTPWrapper> | undefined;

  constructor(
    readonly client: Client,
    readonly where: string,
  ) {}

  exec(command: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const onChannel = (err: Error | undefined, channel: ClientChannel) => {
        if (err) return reject(new SshError(`exec on ${this.where}: ${err.message}`, this.where));
        let stdout = '';
        let stderr = '';
        let exitCode: number | null = null;
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
          finish(() => reject(new SshError(`command cancelled on ${this.where}`, this.where)));
        };
        const timer = opts.timeoutMs
          ? setTimeout(() => {
              channel.close();
              finish(() =>
                reject(new SshError(`command timed out after ${opts.timeoutMs} ms on ${this.where}`, this.where)),
              );
            }, opts.timeoutMs)
          : undefined;
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        channel.on('data', (d: Buffer) => (stdout += d.toString()));
        channel.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        // 'exit' carries the status; 'close' comes after all output. A signal-killed command has no code.
        channel.on('exit', (code: number | null) => (exitCode = code));
        channel.on('close', () => finish(() => resolve({ code: exitCode, stdout, stderr })));
      };
      try {
        this.client.exec(command, onChannel);
      } catch (err) {
        // ssh2 throws synchronously when the connection is already gone (pod terminated, network drop).
        reject(new SshError(`exec on ${this.where}: ${(err as Error).message}`, this.where));
      }
    });
  }

  #sftpSession(): Promise<SFTPWrapper> {
    this.#sftp ??= new Promise((resolve, reject) =>
      this.client.sftp((err, sftp) =>
        err ? reject(new SshError(`sftp on ${this.where}: ${err.message}`, this.where)) : resolve(sftp),
      ),
    );
    return this.#sftp;
  }

  async writeFile(remotePath: string, content: string | Buffer): Promise<void> {
    const sftp = await this.#sftpSession();
    await new Promise<void>((resolve, reject) =>
      sftp.writeFile(remotePath, content, (err) =>
        err ? reject(new SshError(`sftp write ${remotePath}: ${err.message}`, this.where)) : resolve(),
      ),
    );
  }

  async putFile(localPath: string, remotePath: string): Promise<void> {
    const sftp = await this.#sftpSession();
    await new Promise<void>((resolve, reject) =>
      sftp.fastPut(localPath, remotePath, (err) =>
        err ? reject(new SshError(`sftp put ${remotePath}: ${err.message}`, this.where)) : resolve(),
      ),
    );
  }

  async getFile(remotePath: string, localPath: string): Promise<void> {
    const sftp = await this.#sftpSession();
    await new Promise<void>((resolve, reject) =>
      sftp.fastGet(remotePath, localPath, (err) =>
        err ? reject(new SshError(`sftp get ${remotePath}: ${err.message}`, this.where)) : resolve(),
      ),
    );
  }

  close(): void {
    this.client.end();
  }
}
