// Brings up (or finds) the sandbox's long-lived processes: Temporal dev server, sandbox daemon, worker.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { DEV_SERVER_SEARCH_ATTRIBUTE_ARGS, findTemporalBinary } from './temporal-binary.js';
import { TeamServerInfoSchema } from './team-server.js';

export const SANDBOX_TEMPORAL_PORT = 7233;
export const SANDBOX_UI_PORT = 8233;

/** Written by the sandbox daemon once its servers listen. */
export const DaemonInfoSchema = z.object({
  pid: z.number().int(),
  runpodUrl: z.string(),
  controlUrl: z.string(),
  hfUrl: z.string(),
  apiKey: z.string(),
  /** The team server stand-in (phase 1's ssh-host target): sandboxStudy() puts these into the sandbox study. */
  teamServer: TeamServerInfoSchema,
});
export type DaemonInfo = z.infer<typeof DaemonInfoSchema>;

export interface SandboxPaths {
  root: string;
  dir: string;
  sshKey: string;
  temporalDb: string;
  daemonInfo: string;
}

export function sandboxPaths(rootDir: string): SandboxPaths {
  const dir = resolve(rootDir, '.sandbox');
  return {
    root: rootDir,
    dir,
    sshKey: join(dir, 'ssh', 'id_ed25519'),
    temporalDb: join(dir, 'temporal.db'),
    daemonInfo: join(dir, 'daemon.json'),
  };
}

function pidAlive(pidFile: string): number | null {
  if (!existsSync(pidFile)) return null;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** Starts a process in its own session with output to a log file, so it outlives the CLI. */
function spawnDetached(opts: {
  name: string;
  cmd: string;
  args: string[];
  paths: SandboxPaths;
  env?: NodeJS.ProcessEnv;
}) {
  const log = openSync(join(opts.paths.dir, `${opts.name}.log`), 'a');
  const child = spawn(opts.cmd, opts.args, {
    cwd: opts.paths.root,
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, ...opts.env },
  });
  writeFileSync(join(opts.paths.dir, `${opts.name}.pid`), String(child.pid));
  child.unref();
  return child.pid;
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, logFile: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n') : '';
      throw new Error(`${what} did not come up within ${timeoutMs} ms. Log ${logFile}:\n${tail}`);
    }
    await delay(250);
  }
}

/** scripts/setup.sh without the test-only tools: quick when all is in place, minutes once on a fresh clone. */
function ensureSetup(rootDir: string): void {
  const r = spawnSync('bash', [join(rootDir, 'scripts/setup.sh'), '--no-test-tools'], { stdio: 'inherit' });
  if (r.status !== 0)
    throw new Error(`set-up failed (bash scripts/setup.sh exited ${r.status ?? r.signal}): see above`);
}

/** The sandbox needs a real OpenSSH server binary for its pods. */
export function requireSshd(): void {
  if (!existsSync('/usr/sbin/sshd')) {
    throw new Error(
      'sshd not found: the sandbox runs each pod as a real OpenSSH server. Install the Debian package openssh-server (apt-get install openssh-server).',
    );
  }
}

function ensureSshKey(paths: SandboxPaths) {
  if (existsSync(paths.sshKey)) return;
  mkdirSync(join(paths.dir, 'ssh'), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'gpustudy-sandbox', '-f', paths.sshKey]);
}

async function ensureTemporal(paths: SandboxPaths, log: (l: string) => void) {
  if (await portOpen(SANDBOX_TEMPORAL_PORT)) return;
  const bin = findTemporalBinary(paths.root);
  log(`starting Temporal dev server (${bin}), UI on http://localhost:${SANDBOX_UI_PORT}`);
  spawnDetached({
    name: 'temporal',
    cmd: bin,
    args: [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(SANDBOX_TEMPORAL_PORT),
      '--ui-port',
      String(SANDBOX_UI_PORT),
      '--db-filename',
      paths.temporalDb,
      '--log-level',
      'error',
      ...DEV_SERVER_SEARCH_ATTRIBUTE_ARGS,
    ],
    paths,
  });
  await waitFor('Temporal dev server', () => portOpen(SANDBOX_TEMPORAL_PORT), 60_000, join(paths.dir, 'temporal.log'));
}

function readDaemonInfo(paths: SandboxPaths): DaemonInfo | null {
  if (!existsSync(paths.daemonInfo)) return null;
  const r = DaemonInfoSchema.safeParse(JSON.parse(readFileSync(paths.daemonInfo, 'utf8')));
  return r.success ? r.data : null;
}

async function ensureDaemon(
  paths: SandboxPaths,
  log: (l: string) => void,
): Promise<{ info: DaemonInfo; restarted: boolean }> {
  const alive = pidAlive(join(paths.dir, 'daemon.pid'));
  const info = readDaemonInfo(paths);
  if (alive && info && info.pid === alive) return { info, restarted: false };
  // A live daemon whose info this version cannot read (an older one): stop it rather than run two.
  if (alive) await stopProcess(paths, 'daemon', log);
  rmSync(paths.daemonInfo, { force: true });
  log('starting sandbox daemon (RunPod emulator with sshd pods, Hugging Face file server, team server stand-in)');
  spawnDetached({
    name: 'daemon',
    cmd: process.execPath,
    args: ['--import', 'tsx', resolve(paths.root, 'sandbox/daemon.ts'), '--dir', paths.dir],
    paths,
  });
  await waitFor('sandbox daemon', () => readDaemonInfo(paths) !== null, 60_000, join(paths.dir, 'daemon.log'));
  const ready = readDaemonInfo(paths);
  if (!ready) throw new Error('sandbox daemon wrote no info');
  return { info: ready, restarted: true };
}

/** The worker's environment in the sandbox: the same code as production, other endpoints. */
export function sandboxWorkerEnv(paths: SandboxPaths, info: DaemonInfo): NodeJS.ProcessEnv {
  return {
    SANDBOX: 'true',
    TEMPORAL_ADDRESS: `127.0.0.1:${SANDBOX_TEMPORAL_PORT}`,
    RUNPOD_API_KEY: info.apiKey,
    RUNPOD_BASE_URL: info.runpodUrl,
    HF_ENDPOINT: info.hfUrl,
    SSH_PRIVATE_KEY_PATH: paths.sshKey,
    PROJECT_ROOT: paths.root,
    POD_POLL_INTERVAL_MS: '1000',
    DOWNLOAD_STALL_TIMEOUT_MS: '20000',
  };
}

async function stopProcess(paths: SandboxPaths, name: string, log?: (l: string) => void) {
  const pidFile = join(paths.dir, `${name}.pid`);
  const pid = pidAlive(pidFile);
  if (pid) {
    log?.(`stopping ${name} (pid ${pid})`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 60 && pidAlive(pidFile); i++) await delay(250);
  }
  rmSync(pidFile, { force: true });
}

async function ensureWorker(paths: SandboxPaths, info: DaemonInfo, restart: boolean, log: (l: string) => void) {
  // A worker started against an earlier daemon knows stale emulator and HF addresses.
  if (restart) await stopProcess(paths, 'worker', log);
  if (pidAlive(join(paths.dir, 'worker.pid'))) return;
  log('starting worker');
  spawnDetached({
    name: 'worker',
    cmd: process.execPath,
    args: ['--import', 'tsx', resolve(paths.root, 'src/workers/main.ts')],
    paths,
    env: sandboxWorkerEnv(paths, info),
  });
}

/** Idempotent: starts whatever of the sandbox is not running yet. */
export async function ensureSandbox(opts: { rootDir: string; log?: (l: string) => void }) {
  const log = opts.log ?? (() => undefined);
  requireSshd();
  // A fresh clone needs only `npm install`: the venv and the Temporal CLI come on first use (cached after).
  ensureSetup(opts.rootDir);
  const paths = sandboxPaths(opts.rootDir);
  mkdirSync(paths.dir, { recursive: true });
  ensureSshKey(paths);
  await ensureTemporal(paths, log);
  const { info, restarted } = await ensureDaemon(paths, log);
  await ensureWorker(paths, info, restarted, log);
  return { paths, info, temporalAddress: `127.0.0.1:${SANDBOX_TEMPORAL_PORT}` };
}

/** The sandbox when its daemon runs (read-only: starts nothing), else null. */
export function runningSandbox(rootDir: string): { paths: SandboxPaths; info: DaemonInfo } | null {
  const paths = sandboxPaths(rootDir);
  const info = readDaemonInfo(paths);
  return info && pidAlive(join(paths.dir, 'daemon.pid')) === info.pid ? { paths, info } : null;
}

/** Stops the worker, the daemon (which terminates its pods' sshd) and the dev server. */
export async function stopSandbox(opts: { rootDir: string; log?: (l: string) => void }) {
  const paths = sandboxPaths(opts.rootDir);
  for (const name of ['worker', 'daemon', 'temporal']) await stopProcess(paths, name, opts.log);
  rmSync(paths.daemonInfo, { force: true });
}
