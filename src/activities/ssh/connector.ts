// Opens SSH sessions to a pod (RunPod's `ssh.direct`, the team's own server, or a sandbox sshd) over ssh2, with the
// worker's private key and the pod's pinned host key.
import { readFileSync } from 'node:fs';
import { Client } from 'ssh2';
import type { SshTarget } from './types.js';
import { HostKeyMismatchError, SshError } from './errors.js';
import { hostKeyFingerprint, keyType } from './host-key.js';
import type { ConnectOptions, PodConnector, PodShell } from './pod-shell.js';
import { checkedBudgetMs } from './reconnecting-shell.js';
import { Ssh2Shell } from './ssh2-shell.js';

/** Connects with the worker's private key; the key never leaves the worker. */
export class SshPodConnector implements PodConnector {
  readonly #privateKey: Buffer;
  readonly #connectTimeoutMs: number;
  readonly reconnectBudgetMs?: number;

  /**
   * @param opts.connectTimeoutMs how long one connect may take, handshake and login included.
   * @param opts.reconnectBudgetMs how long a ReconnectingPodShell over this connector keeps reconnecting one operation
   *   after its first drop (see {@link PodConnector.reconnectBudgetMs}).
   */
  constructor(opts: { privateKeyPath: string; connectTimeoutMs: number; reconnectBudgetMs?: number }) {
    this.#privateKey = readFileSync(opts.privateKeyPath);
    this.#connectTimeoutMs = opts.connectTimeoutMs;
    if (opts.reconnectBudgetMs !== undefined) this.reconnectBudgetMs = checkedBudgetMs(opts.reconnectBudgetMs);
  }

  connect(target: SshTarget, opts: ConnectOptions = {}): Promise<PodShell> {
    const hostPort = `${target.host}:${target.port}`;
    const pinned = target.hostKeySha256;
    if (pinned === undefined && !opts.trustOnFirstUse) {
      return Promise.reject(new HostKeyMismatchError({ hostPort, expected: null, presented: null }));
    }
    // An 'abort' listener added to an already aborted signal never fires.
    if (opts.signal?.aborted) {
      const where = `${target.username}@${hostPort}`;
      return Promise.reject(new SshError(`connection to ${where} cancelled`, where, 'cancelled'));
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
