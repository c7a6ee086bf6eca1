/**
 * Installs and starts the pod-side dead-man's switch (`pod/watchdog.sh`): when the orchestrator stops touching
 * `<ws>/heartbeat`, the pod ends its own work and stops itself. Idempotent: a running watchdog is kept (its config
 * is re-read on every check), a changed script replaces it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PodWatchdogInput, PodWatchdogStatus } from './types.js';
import { killDetached, q, RemoteCommandError, startDetached, type PodShell } from '../ssh/index.js';

export interface EnsureWatchdogOptions {
  ws: string;
  settings: PodWatchdogInput;
  /** Local path of `pod/watchdog.sh`. */
  scriptPath: string;
  /** RunPod REST v2 base URL the pod calls to stop itself (the worker's RUNPOD_BASE_URL). */
  apiBaseUrl: string;
  /** The worker's account key: copied onto the pod only when the study opted in (`account-key-opt-in`). */
  accountApiKey?: string | undefined;
}

export async function ensureWatchdog(sh: PodShell, o: EnsureWatchdogOptions): Promise<PodWatchdogStatus> {
  const dir = `${o.ws}/watchdog`;
  const script = `${dir}/watchdog.sh`;
  const pidFile = `${dir}/pid`;
  const run = async (step: string, command: string) => {
    const r = await sh.exec(command, { timeoutMs: 60_000 });
    if (r.code !== 0) throw new RemoteCommandError(step, r.code, (r.stderr || r.stdout).slice(-1000));
    return r.stdout;
  };

  await run('watchdog directory', `mkdir -p ${q(dir)} && chmod 700 ${q(dir)} && touch ${q(`${o.ws}/heartbeat`)}`);
  const local = readFileSync(o.scriptPath);
  const want = createHash('sha256').update(local).digest('hex');
  const have = (await run('watchdog checksum', `sha256sum ${q(script)} 2>/dev/null | cut -d' ' -f1 || true`)).trim();
  if (have !== want) {
    // A watchdog running an older script is replaced, not left watching with stale logic.
    if (have) await run('stop old watchdog', killDetached(pidFile));
    await sh.writeFile(script, local);
  }

  const optIn = o.settings.selfStop === 'account-key-opt-in';
  const selfStop = o.settings.selfStop === 'none' ? 'none' : optIn && o.accountApiKey ? 'account-key' : 'pod-key';
  if (selfStop === 'account-key' && o.accountApiKey) {
    await sh.writeFile(`${dir}/api-key`, o.accountApiKey);
    await run('protect key', `chmod 600 ${q(`${dir}/api-key`)}`);
  } else {
    // Never leave an account key behind once the study no longer opts in.
    await run('remove key', `rm -f ${q(`${dir}/api-key`)}`);
  }
  const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));
  const config = [
    `WS=${q(o.ws)}`,
    `STALE_AFTER_S=${seconds(o.settings.staleAfterMs)}`,
    `CHECK_EVERY_S=${seconds(o.settings.checkIntervalMs)}`,
    `SELF_STOP=${selfStop}`,
    `POD_ID=${q(o.settings.podId ?? '')}`,
    `API_BASE_URL=${q(o.apiBaseUrl.replace(/\/+$/, ''))}`,
    '',
  ].join('\n');
  // Written aside and moved, so the running watchdog never sources half a file.
  await sh.writeFile(`${dir}/config.tmp`, config);
  await run('watchdog config', `mv -f ${q(`${dir}/config.tmp`)} ${q(`${dir}/config`)}`);

  const probe = await run('watchdog probe', `sh ${q(script)} ${q(dir)} --probe`);
  const canStop = /pod-id=yes/.test(probe) && /key=yes/.test(probe);
  const started = await run(
    'start watchdog',
    startDetached({ command: `exec sh ${q(script)} ${q(dir)}`, pidFile, logFile: `${dir}/out`, cwd: o.ws }),
  );
  const state = started.trim().startsWith('running') ? 'running' : 'started';
  const stale = `${Math.round(o.settings.staleAfterMs / 60_000)} min`;
  if (selfStop === 'none') {
    return {
      state,
      stopWith: 'none',
      note: `self-stop off: after ${stale} without a heartbeat the work is ended only`,
    };
  }
  if (!canStop) {
    const missing = /pod-id=yes/.test(probe)
      ? optIn
        ? 'the worker has no RunPod API key to copy'
        : 'no pod-scoped RUNPOD_API_KEY on the pod'
      : 'no pod id';
    return {
      state,
      stopWith: 'none',
      note: `${missing}: after ${stale} without a heartbeat the work is ended, but the pod is not stopped`,
    };
  }
  return {
    state,
    stopWith: selfStop,
    note: `after ${stale} without a heartbeat the pod ends its work and stops itself (${selfStop})`,
  };
}
