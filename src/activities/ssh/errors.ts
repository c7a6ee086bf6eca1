import { ErrorTypes } from '../../shared/errors.js';

/**
 * What went wrong with SSH: `connect` (could not log in), `lost` (the connection dropped under a command),
 * `timeout` (a command ran past its limit), `cancelled` (the activity was cancelled), `sftp` (an SFTP operation
 * failed; the connection may still be fine), `channel` (the server refused a new channel), `host-key` (the server's
 * host key is not the pinned one, or there is no pin: {@link HostKeyMismatchError}).
 */
export type SshErrorKind = 'connect' | 'lost' | 'timeout' | 'cancelled' | 'sftp' | 'channel' | 'host-key';

/** The pod could not be reached or the SSH session broke: retryable. */
export class SshError extends Error {
  override readonly name: string = ErrorTypes.Ssh;
  constructor(
    message: string,
    readonly where: string,
    readonly kind: SshErrorKind = 'lost',
  ) {
    super(message);
  }
}

/**
 * One operation kept losing its connection (or could not get a new one) until its reconnect budget was spent. Still a
 * plain retryable SshError to Temporal (same `name`): the activity's retry takes over from here. Kind `connect` when
 * the last try could not log in, `lost` when the last try was cut off.
 */
export class SshReconnectBudgetError extends SshError {
  readonly details: { budgetMs: number; elapsedMs: number; reconnects: number };
  constructor(o: { where: string; budgetMs: number; elapsedMs: number; reconnects: number; last: SshError }) {
    super(
      `${o.last.message} (gave up after ${o.reconnects} reconnect(s) in ${o.elapsedMs} ms: the reconnect budget of ` +
        `${o.budgetMs} ms is spent)`,
      o.where,
      o.last.kind === 'connect' ? 'connect' : 'lost',
    );
    this.cause = o.last;
    this.details = { budgetMs: o.budgetMs, elapsedMs: o.elapsedMs, reconnects: o.reconnects };
  }
}

/**
 * The server at a pod's address presented a host key other than the pinned one (another machine, or someone in
 * between), or there was no pin to check it against. Not retryable: the reconnect logic and Temporal both stop.
 */
export class HostKeyMismatchError extends SshError {
  override readonly name = ErrorTypes.HostKeyMismatch;
  readonly details: { hostPort: string; expected: string | null; presented: string | null };
  constructor(o: { hostPort: string; expected: string | null; presented: string | null; keyType?: string }) {
    super(
      o.expected === null
        ? `refusing to connect to ${o.hostPort}: no host key pinned for it (a rented pod's key is pinned when it ` +
            "becomes ready; the team's server needs target.hostKeySha256 in the study file)"
        : `host key of ${o.hostPort} changed: expected ${o.expected}, presented ${o.presented ?? '?'}` +
            `${o.keyType ? ` (${o.keyType})` : ''}. This is not the machine the session pinned (or someone is in ` +
            'between); the session stops and does not reconnect.',
      o.hostPort,
      'host-key',
    );
    this.details = { hostPort: o.hostPort, expected: o.expected, presented: o.presented };
  }
}

/** A command on the pod failed; carries the tail of its output. */
export class RemoteCommandError extends Error {
  override readonly name = ErrorTypes.RemoteCommand;
  constructor(
    readonly step: string,
    readonly code: number | null,
    readonly outputTail: string,
  ) {
    super(`${step} failed on the pod (exit ${code ?? 'signal'}): ${outputTail}`);
  }
}
