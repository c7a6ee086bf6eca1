// One real OpenSSH sshd per emulated pod, on a free loopback port, plus the cleanup that makes a
// terminated pod's processes die with it (as a container's would).
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { access, chmod, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const DEFAULT_SSHD_PATH = '/usr/sbin/sshd';
export const DEFAULT_SSH_KEYGEN_PATH = '/usr/bin/ssh-keygen';

export interface SshdManagerOptions {
  sshdPath: string;
  sshKeygenPath: string;
  log: (line: string) => void;
  /** How long to wait for "Server listening" before giving up, in ms. */
  startTimeoutMs?: number;
  /** SIGTERM-to-SIGKILL grace on stop, in ms. */
  stopGraceMs?: number;
}

export interface SshdStartInput {
  podId: string;
  /** `<dataDir>/pods/<id>`, already prepared by {@link preparePodDir}. */
  dir: string;
  /** Content for authorized_keys; empty makes sshd refuse every login (the 'sshd refuses' fault). */
  authorizedKeys: string;
  /** Session environment, in precedence order (a later duplicate wins). */
  env: [string, string][];
  /** Listen on this port (a restart in place); default: a free loopback port. */
  port?: number;
  /** Serve the SFTP subsystem (default true); false: exec works, SFTP is refused (the 'sftp-broken' fault). */
  sftp?: boolean;
  /**
   * `NAME=value` in the environment of every process the server runs (it must also be in `env`): stop() ends them all.
   * Default `RUNPOD_POD_ID=<podId>`.
   */
  processMarker?: string;
}

export interface SshdHandle {
  podId: string;
  pid: number;
  port: number;
  configPath: string;
  child: ChildProcess;
  /** Resolves when the sshd listener has exited. */
  exited: Promise<void>;
  /** `NAME=value` carried by every process of this server (see {@link SshdStartInput.processMarker}). */
  marker: string;
  /**
   * Connection processes (pid -> start time) of an earlier listener this one replaced in place: they keep their
   * connections, and die with this handle's stop.
   */
  inherited: Map<number, string>;
}

/** Paths inside a pod directory. */
export function podPaths(dir: string): {
  workspace: string;
  home: string;
  hostKey: string;
  authorizedKeys: string;
  config: string;
  pidFile: string;
  log: string;
} {
  return {
    workspace: join(dir, 'workspace'),
    // The pod's own home: the login user's real ~/.bashrc (pyenv, cargo...) must not leak into pod sessions.
    home: join(dir, 'home'),
    hostKey: join(dir, 'ssh_host_ed25519_key'),
    authorizedKeys: join(dir, 'authorized_keys'),
    config: join(dir, 'sshd_config'),
    pidFile: join(dir, 'sshd.pid'),
    log: join(dir, 'sshd.log'),
  };
}

/**
 * Fails early, with the fix, when OpenSSH is missing; creates /run/sshd (the privilege-separation
 * directory sshd insists on when started as root).
 */
export async function assertOpenSshInstalled(paths: { sshdPath: string; sshKeygenPath: string }): Promise<void> {
  for (const p of [paths.sshdPath, paths.sshKeygenPath]) {
    try {
      await access(p, constants.X_OK);
    } catch {
      throw new Error(
        `RunPod emulator: ${p} not found or not executable. Every emulated pod runs a real OpenSSH sshd: ` +
          'install the Debian package openssh-server (apt-get install -y openssh-server).',
      );
    }
  }
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
}

/** Creates the pod directory, its workspace and an ed25519 host key. */
export async function preparePodDir(opts: { dir: string; podId: string; sshKeygenPath: string }): Promise<void> {
  const p = podPaths(opts.dir);
  await mkdir(p.workspace, { recursive: true });
  await mkdir(p.home, { recursive: true });
  await newHostKey(opts);
}

/**
 * The pod's host key fingerprint as `ssh-keygen -lf` prints it (`SHA256:` + unpadded base64 of the key blob), read
 * from `<dir>/ssh_host_ed25519_key.pub`; null when there is none.
 */
export function hostKeySha256(dir: string): string | null {
  let pub: string;
  try {
    pub = readFileSync(`${podPaths(dir).hostKey}.pub`, 'utf8');
  } catch {
    return null;
  }
  const blob = pub.trim().split(/\s+/)[1];
  if (!blob) return null;
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** Replaces the pod's ed25519 host key with a fresh one (a running sshd keeps the old one until restarted). */
export async function newHostKey(opts: { dir: string; podId: string; sshKeygenPath: string }): Promise<void> {
  const p = podPaths(opts.dir);
  await rm(p.hostKey, { force: true });
  await rm(`${p.hostKey}.pub`, { force: true });
  await execFileAsync(opts.sshKeygenPath, [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    `runpod-emulator-${opts.podId}`,
    '-f',
    p.hostKey,
  ]);
}

/**
 * One `SetEnv` directive for all variables: sshd honours only the FIRST SetEnv line it reads (checked
 * with OpenSSH 9.2), so separate lines would silently drop everything after the first. Values are
 * double-quoted with `\` and `"` escaped (sshd's argv_split rules); names that are not shell identifiers
 * and values with line breaks or NULs cannot be expressed and are returned in `skipped`.
 */
export function formatSetEnv(pairs: [string, string][]): { line: string | null; skipped: string[] } {
  const merged = new Map<string, string>();
  const skipped: string[] = [];
  for (const [k, v] of pairs) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /[\n\r\0]/.test(v)) {
      skipped.push(k);
      continue;
    }
    merged.delete(k); // re-insert so the winner keeps a stable, readable order
    merged.set(k, v);
  }
  if (merged.size === 0) return { line: null, skipped };
  const quoted = [...merged].map(([k, v]) => `"${`${k}=${v}`.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
  return { line: `SetEnv ${quoted.join(' ')}`, skipped };
}

/** The sshd_config text for one pod. */
export function renderSshdConfig(opts: {
  podId: string;
  dir: string;
  port: number;
  setEnvLine: string | null;
  /** Without it there is no `Subsystem sftp` line, and sshd refuses SFTP sessions. */
  sftp: boolean;
}): string {
  const p = podPaths(opts.dir);
  const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return [
    `# Generated by the RunPod emulator for pod ${opts.podId}.`,
    'ListenAddress 127.0.0.1',
    `Port ${opts.port}`,
    `HostKey ${q(p.hostKey)}`,
    // AuthorizedKeysFile expands %-tokens.
    `AuthorizedKeysFile ${q(p.authorizedKeys.replace(/%/g, '%%'))}`,
    `PidFile ${q(p.pidFile)}`,
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    // The orchestrator opens several sessions at once; the defaults (10:30:100, 10) drop some.
    'MaxStartups 100',
    'MaxSessions 100',
    ...(opts.sftp ? ['Subsystem sftp internal-sftp'] : ['# No SFTP subsystem: the sftp-broken fault.']),
    ...(opts.setEnvLine
      ? ['# sshd honours only the first SetEnv line: all variables are on this one.', opts.setEnvLine]
      : []),
    '',
  ].join('\n');
}

export class SshdManager {
  readonly #opts: Required<SshdManagerOptions>;
  readonly #live = new Set<SshdHandle>();
  #closed = false;

  constructor(options: SshdManagerOptions) {
    this.#opts = { startTimeoutMs: 10_000, stopGraceMs: 2_000, ...options };
  }

  /** Handles of every sshd this manager started and that has not exited. */
  get live(): SshdHandle[] {
    return [...this.#live];
  }

  /**
   * Writes authorized_keys and sshd_config and starts `sshd -D -e -f <cfg>` on a free loopback port.
   * Resolves once sshd logs "Server listening", so the port accepts connections from then on.
   */
  async start(input: SshdStartInput): Promise<SshdHandle> {
    const p = podPaths(input.dir);
    const keys = input.authorizedKeys.trim();
    await writeFile(p.authorizedKeys, keys === '' ? '' : `${keys}\n`, { mode: 0o600 });
    await chmod(p.authorizedKeys, 0o600);
    const { line, skipped } = formatSetEnv(input.env);
    if (skipped.length > 0) this.#opts.log(`pod ${input.podId}: env not passed to SSH sessions: ${skipped.join(', ')}`);
    let lastError: unknown;
    // A free port can be taken between probing and sshd's bind; try a few.
    for (let attempt = 0; attempt < (input.port === undefined ? 3 : 1); attempt++) {
      const port = input.port ?? (await freeLoopbackPort());
      await writeFile(
        p.config,
        renderSshdConfig({
          podId: input.podId,
          dir: input.dir,
          port,
          setEnvLine: line,
          sftp: input.sftp ?? true,
        }),
      );
      try {
        return await this.#spawn(input.podId, port, p.config, p.log, input.processMarker);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  async #spawn(
    podId: string,
    port: number,
    configPath: string,
    logPath: string,
    processMarker = `RUNPOD_POD_ID=${podId}`,
  ): Promise<SshdHandle> {
    // The log is appended to across restarts (on the same port too): only what this start writes counts.
    const logFrom = (await readFile(logPath, 'utf8').catch(() => '')).length;
    // Checked right before spawning: after stopAll() no new sshd may appear.
    if (this.#closed) throw new Error(`sshd for pod ${podId} not started: the emulator is closing`);
    const logFd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      // Own process group, so nothing we do to it reaches the emulator's group (and vice versa on ^C).
      child = spawn(this.#opts.sshdPath, ['-D', '-e', '-f', configPath], {
        stdio: ['ignore', 'ignore', logFd],
        detached: true,
      });
    } finally {
      closeSync(logFd);
    }
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const pid = child.pid;
    if (pid === undefined) throw await spawnError;
    const handle: SshdHandle = {
      podId,
      pid,
      port,
      configPath,
      child,
      exited,
      marker: processMarker,
      inherited: new Map(),
    };
    this.#live.add(handle);
    void exited.then(() => this.#live.delete(handle));

    const deadline = Date.now() + this.#opts.startTimeoutMs;
    const marker = `Server listening on 127.0.0.1 port ${port}`;
    let done = false;
    void exited.then(() => (done = true));
    while (Date.now() < deadline) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      if (log.slice(logFrom).includes(marker)) return handle;
      if (done) break;
      await delayMs(20);
    }
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-8).join('\n');
    await this.stop(handle);
    throw new Error(`sshd for pod ${podId} did not start listening on port ${port}:\n${tail}`);
  }

  /**
   * Stops a pod's sshd and everything the pod runs: the listener, its per-connection children and any
   * process whose environment carries this pod's RUNPOD_POD_ID (daemons started over SSH with setsid).
   * SIGTERM first, SIGKILL for whatever is still alive after the grace period.
   */
  async stop(handle: SshdHandle): Promise<void> {
    const first = podProcessesSync(handle.pid, handle.marker);
    for (const [pid, start] of handle.inherited) if (isAliveSame(pid, start)) first.set(pid, start);
    signalAll(first, 'SIGTERM');
    const deadline = Date.now() + this.#opts.stopGraceMs;
    while (Date.now() < deadline && [...first].some(([pid, start]) => isAliveSame(pid, start))) await delayMs(25);
    const rest = podProcessesSync(handle.pid, handle.marker);
    for (const [pid, start] of first) if (isAliveSame(pid, start)) rest.set(pid, start);
    signalAll(rest, 'SIGKILL');
    await Promise.race([handle.exited, delayMs(1_000)]);
    this.#live.delete(handle);
  }

  /**
   * Cuts every open SSH connection of the pod (the listener's per-connection children) while sshd keeps
   * listening and detached pod processes keep running: what a network drop looks like to both ends.
   */
  dropConnections(handle: SshdHandle): number {
    const connections = new Map<number, string>();
    for (const name of safeReaddir('/proc')) {
      const pid = Number(name);
      const stat = Number.isInteger(pid) ? parseStat(readProc(pid, 'stat')) : null;
      if (stat && stat.ppid === handle.pid && stat.state !== 'Z') connections.set(pid, stat.start);
    }
    // Connections an earlier listener accepted before a restart in place are this pod's too.
    for (const [pid, start] of handle.inherited) if (isAliveSame(pid, start)) connections.set(pid, start);
    signalAll(connections, 'SIGKILL');
    return connections.size;
  }

  /**
   * Restarts the pod's sshd listener in place, on the same port, with what `input` and the pod directory hold now
   * (a new host key, a new session environment). Open connections and detached pod processes keep running, as with
   * `kill -TERM` of a real sshd's listener and a fresh start; they die with the new handle's stop.
   */
  async restart(handle: SshdHandle, input: SshdStartInput): Promise<SshdHandle> {
    const inherited = new Map(handle.inherited);
    for (const name of safeReaddir('/proc')) {
      const pid = Number(name);
      const stat = Number.isInteger(pid) ? parseStat(readProc(pid, 'stat')) : null;
      if (stat && stat.ppid === handle.pid && stat.state !== 'Z') inherited.set(pid, stat.start);
    }
    // The listener alone: sshd exits on SIGTERM without touching its connection processes.
    try {
      process.kill(handle.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
    await Promise.race([handle.exited, delayMs(this.#opts.stopGraceMs)]);
    try {
      process.kill(handle.pid, 'SIGKILL');
    } catch {
      // Exited on SIGTERM.
    }
    await handle.exited;
    this.#live.delete(handle);
    const next = await this.start({ ...input, port: handle.port });
    for (const [pid, start] of inherited) next.inherited.set(pid, start);
    return next;
  }

  /** How many logins (accepted public keys) the pod's sshd has logged, over all its restarts. */
  async acceptedLogins(dir: string): Promise<number> {
    const log = await readFile(podPaths(dir).log, 'utf8').catch(() => '');
    return log.split('\n').filter((l) => l.includes('Accepted publickey')).length;
  }

  /** Stops every sshd and refuses to start new ones. */
  async stopAll(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.live.map((h) => this.stop(h)));
  }

  /** For `process.on('exit')`: synchronous SIGKILL of every pod's processes. */
  killAllSync(): void {
    this.#closed = true;
    for (const h of this.#live) signalAll(podProcessesSync(h.pid, h.marker), 'SIGKILL');
    this.#live.clear();
  }
}

/**
 * Leftovers of an emulator that died without close(): kills the sshd and pod processes recorded under
 * `<dataDir>/pods/*` and removes those directories (the in-memory state that owned them is gone).
 */
export async function cleanupStalePods(podsDir: string, log: (line: string) => void): Promise<void> {
  const entries = await readdir(podsDir).catch(() => [] as string[]);
  for (const podId of entries) {
    const dir = join(podsDir, podId);
    const pidText = await readFile(podPaths(dir).pidFile, 'utf8').catch(() => '');
    const pid = Number(pidText.trim());
    const cmdline = Number.isInteger(pid) && pid > 0 ? readProc(pid, 'cmdline') : null;
    const ours = cmdline !== null && cmdline.includes(podPaths(dir).config);
    const pids = podProcessesSync(ours ? pid : null, `RUNPOD_POD_ID=${podId}`);
    if (pids.size > 0) {
      log(`killing ${pids.size} leftover process(es) of pod ${podId}`);
      signalAll(pids, 'SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Leftovers of a long-lived sshd (the sandbox's team server) whose owner died without stopping it: the listener
 * recorded in `<dir>/sshd.pid` when it runs this directory's config, and every process carrying `marker`. SIGKILL.
 */
export function killStaleSshd(dir: string, marker: string, log: (line: string) => void): void {
  let pid = Number.NaN;
  try {
    pid = Number(readFileSync(podPaths(dir).pidFile, 'utf8').trim());
  } catch {
    // No pid file: nothing ran here, or it was stopped cleanly.
  }
  const cmdline = Number.isInteger(pid) && pid > 0 ? readProc(pid, 'cmdline') : null;
  const ours = cmdline !== null && cmdline.includes(podPaths(dir).config);
  const pids = podProcessesSync(ours ? pid : null, marker);
  if (pids.size > 0) {
    log(`killing ${pids.size} leftover process(es) of ${dir}`);
    signalAll(pids, 'SIGKILL');
  }
}

/**
 * `rootPid` and its descendants, plus every process whose environment has `marker` (`RUNPOD_POD_ID=<podId>` for a
 * pod) and theirs, as pid -> start time (to survive pid reuse). Never this process or its ancestors (an emulator
 * started from inside a pod session). Zombies are left out.
 */
function podProcessesSync(rootPid: number | null, marker: string): Map<number, string> {
  const children = new Map<number, number[]>();
  const parentOf = new Map<number, number>();
  const startOf = new Map<number, string>();
  const stack: number[] = rootPid === null ? [] : [rootPid];
  for (const name of safeReaddir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = parseStat(readProc(pid, 'stat'));
    if (!stat) continue;
    parentOf.set(pid, stat.ppid);
    children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), pid]);
    if (stat.state !== 'Z') startOf.set(pid, stat.start);
    if (readProc(pid, 'environ')?.split('\0').includes(marker)) stack.push(pid);
  }
  const seen = new Set<number>();
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  for (let pid: number | undefined = process.pid; pid !== undefined && pid > 0; pid = parentOf.get(pid)) {
    seen.delete(pid);
    if (parentOf.get(pid) === pid) break;
  }
  const out = new Map<number, string>();
  for (const pid of seen) {
    const start = startOf.get(pid);
    if (start !== undefined) out.set(pid, start);
  }
  return out;
}

/** state, ppid and start time (field 22) from /proc/<pid>/stat; the command name may contain spaces. */
function parseStat(stat: string | null): { state: string; ppid: number; start: string } | null {
  if (stat === null) return null;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(f[1]);
  if (!Number.isInteger(ppid)) return null;
  return { state: f[0] ?? '', ppid, start: f[19] ?? '' };
}

function isAliveSame(pid: number, start: string): boolean {
  const stat = parseStat(readProc(pid, 'stat'));
  return stat !== null && stat.state !== 'Z' && stat.start === start;
}

function signalAll(pids: Map<number, string>, signal: NodeJS.Signals): void {
  for (const pid of pids.keys()) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function delayMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
