/**
 * Shell fragments run on the pod. Long work runs detached (setsid + nohup, pid file on the volume) so an SSH
 * drop or a worker crash loses nothing: the next activity attempt finds the pid and re-attaches.
 */

/** Single-quotes a value for POSIX sh. */
export function q(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `KEY='v' KEY2='v2' ` prefix; undefined values are left out. */
export function envPrefix(env: Record<string, string | undefined>): string {
  return Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${q(v)} `)
    .join('');
}

/** Prints the pod's volume directory: the sandbox sets POD_WORKSPACE, RunPod mounts the volume at a fixed path. */
export function workspaceProbe(defaultDir: string): string {
  return `printf '%s' "\${POD_WORKSPACE:-${defaultDir.replace(/[^A-Za-z0-9/._-]/g, '')}}"`;
}

/**
 * Starts `command` detached unless the process in `pidFile` is alive. Prints `started <pid>` or `running <pid>`.
 * setsid puts it in its own session, so closing the SSH channel does not send it SIGHUP.
 */
export function startDetached(opts: { command: string; pidFile: string; logFile: string; cwd: string }): string {
  const { command, pidFile, logFile, cwd } = opts;
  return [
    `if [ -f ${q(pidFile)} ] && kill -0 "$(cat ${q(pidFile)})" 2>/dev/null; then echo "running $(cat ${q(pidFile)})"; exit 0; fi`,
    `cd ${q(cwd)}`,
    `setsid nohup sh -c ${q(command)} >> ${q(logFile)} 2>&1 < /dev/null &`,
    `echo $! > ${q(pidFile)}`,
    `echo "started $!"`,
  ].join('\n');
}

/** Prints `alive` or `dead` for the process in `pidFile` (dead when there is no pid file). */
export function isAlive(pidFile: string): string {
  return `if [ -f ${q(pidFile)} ] && kill -0 "$(cat ${q(pidFile)})" 2>/dev/null; then echo alive; else echo dead; fi`;
}

/** Kills the process group started by startDetached, then the pid itself, and removes the pid file. */
export function killDetached(pidFile: string): string {
  return [
    `if [ -f ${q(pidFile)} ]; then p="$(cat ${q(pidFile)})";`,
    `kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null;`,
    `for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done;`,
    `kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; rm -f ${q(pidFile)}; fi; true`,
  ].join(' ');
}

/** Last `lines` lines of a file, or nothing. */
export function tail(file: string, lines = 40): string {
  return `tail -n ${lines} ${q(file)} 2>/dev/null || true`;
}

/**
 * Prints the pids (one a line) of processes whose command line contains `needle`, other than this shell. The glob
 * is expanded before any `grep` starts, so the search never finds its own helpers.
 */
export function findProcesses(needle: string): string {
  return [
    `for d in /proc/[0-9]*; do p="\${d#/proc/}"; [ "$p" = "$$" ] && continue;`,
    `tr '\\0' ' ' < "$d/cmdline" 2>/dev/null | grep -qF -- ${q(needle)} && echo "$p"; done; true`,
  ].join(' ');
}

/** TERM, a few seconds' grace, then KILL for each pid (and its process group when it leads one). */
export function killPids(pids: number[]): string {
  if (pids.length === 0) return 'true';
  const list = pids.map((p) => String(Math.trunc(p))).join(' ');
  return [
    `for p in ${list}; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done;`,
    `for i in 1 2 3 4 5 6 7 8 9 10; do alive=0; for p in ${list}; do kill -0 "$p" 2>/dev/null && alive=1; done;`,
    `[ $alive = 0 ] && break; sleep 0.5; done;`,
    `for p in ${list}; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; done; true`,
  ].join(' ');
}

/** The orchestrator's touch on the pod's dead-man's-switch file (`<ws>/heartbeat`), done on every poll. */
export function touchHeartbeat(ws: string): string {
  return `touch ${q(`${ws}/heartbeat`)}`;
}

/** JSON a pod printed or wrote, or undefined when it is not JSON (the caller's zod schema then refuses it). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
