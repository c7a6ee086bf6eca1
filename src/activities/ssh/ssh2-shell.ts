// One live ssh2 connection as a PodShell: exec with timeout and cancellation, SFTP that fails (not hangs) when the
// connection goes away under it.
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { SshError } from './errors.js';
import type { ExecResult, PodShell } from './pod-shell.js';

/** A PodShell over one connected ssh2 Client (made by SshPodConnector); it never reconnects. */
export class Ssh2Shell implements PodShell {
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
