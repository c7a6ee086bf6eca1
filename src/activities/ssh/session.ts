// The SSH session an activity works in, and what every system does through it (checked commands, checksums).
import { activityInfo, cancellationSignal, log } from '@temporalio/activity';
import type { PodEndpoint } from './types.js';
import type { PodConnector, PodShell } from './pod-shell.js';
import { ReconnectingPodShell } from './reconnecting-shell.js';
import { RemoteCommandError } from './errors.js';
import { q } from './remote.js';

/**
 * One SSH session for the running activity, cancelled with it. A dropped connection is replaced and the interrupted
 * command run again (callers keep their commands idempotent), so a network blip costs a reconnect, not an activity
 * retry. `cleanup` runs on every exit path before the connection closes (its own failure ignored).
 */
export async function withActivityShell<T>(input: {
  connector: PodConnector;
  endpoint: PodEndpoint;
  fn: (sh: ReconnectingPodShell) => Promise<T>;
  cleanup?: (sh: PodShell) => Promise<unknown>;
}): Promise<T> {
  const { activityType, attempt } = activityInfo();
  const sh = await ReconnectingPodShell.open(input.connector, input.endpoint.ssh, {
    signal: cancellationSignal(),
    onReconnect: (count, cause) => {
      log.warn('SSH connection lost; reconnected', { activityType, attempt, count, cause: cause.message });
    },
  });
  try {
    return await input.fn(sh);
  } finally {
    if (input.cleanup) await input.cleanup(sh).catch(() => undefined);
    sh.close();
  }
}

/** `withShell(endpoint, fn)` over one connector: how each pod-side system opens its activity's session. */
export function shellsOver(connector: PodConnector) {
  return <T>(endpoint: PodEndpoint, fn: (sh: ReconnectingPodShell) => Promise<T>): Promise<T> =>
    withActivityShell({ connector, endpoint, fn });
}

/** Runs a command under the activity's cancellation; a non-zero exit is a RemoteCommandError naming the step. */
export async function runChecked(sh: PodShell, step: string, command: string, timeoutMs = 120_000): Promise<string> {
  const r = await sh.exec(command, { timeoutMs, signal: cancellationSignal() });
  if (r.code !== 0) throw new RemoteCommandError(step, r.code, (r.stderr || r.stdout).slice(-2000));
  return r.stdout;
}

/** sha256 of pod files by `sha256sum`, keyed by path; a missing file is simply absent from the map. */
export async function remoteSha256(sh: PodShell, paths: string[]): Promise<Map<string, string>> {
  const out = await runChecked(sh, 'checksum', `sha256sum ${paths.map(q).join(' ')} 2>/dev/null || true`);
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const match = /^([0-9a-f]{64})\s+\*?(.+)$/.exec(line.trim());
    if (match?.[1] && match[2]) m.set(match[2], match[1]);
  }
  return m;
}
