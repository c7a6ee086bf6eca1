// The chaos run's own processes: a Temporal dev server it can restart (its state in a file, so workflows survive)
// and a production worker it can SIGKILL and start again, as a process supervisor would.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { DEV_SERVER_SEARCH_ATTRIBUTE_ARGS, findTemporalBinary } from '../temporal-binary.js';

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

export async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`chaos: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A child process whose exit can be awaited; output appended to a log file. */
class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv, logPath: string) {
    const log = createWriteStream(logPath, { flags: 'a' });
    this.proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.pipe(log);
    this.proc.stderr?.pipe(log);
    this.exited = new Promise((res) => this.proc.once('exit', () => res()));
  }
  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  async stop(signal: NodeJS.Signals): Promise<void> {
    if (this.alive) this.proc.kill(signal);
    await this.exited;
  }
}

export interface DevServer {
  address: string;
  /** Stops the server (SIGTERM) and starts it again on the same port and database. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startDevServer(opts: { rootDir: string; dir: string }): Promise<DevServer> {
  const port = await freePort();
  const bin = findTemporalBinary(opts.rootDir);
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--headless',
    '--db-filename',
    join(opts.dir, 'temporal.db'),
    '--log-level',
    'error',
    ...DEV_SERVER_SEARCH_ATTRIBUTE_ARGS,
  ];
  const start = async () => {
    const child = new Child(bin, args, process.env, join(opts.dir, 'temporal.log'));
    await until('the Temporal dev server', () => portOpen(port), 60_000);
    return child;
  };
  let child = await start();
  return {
    address: `127.0.0.1:${port}`,
    async restart() {
      await child.stop('SIGTERM');
      await until('the dev server port to close', async () => !(await portOpen(port)), 30_000);
      child = await start();
    },
    close: () => child.stop('SIGTERM'),
  };
}

export interface WorkerProcess {
  /** SIGKILL, as a crashed machine or the OOM killer would: no drain, no last heartbeat. */
  kill(): Promise<void>;
  /** A fresh worker process on the same task queue (what a supervisor does after a crash). */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** `npm run worker`'s entry point as a child process with `env`; started by `start()`. */
export function workerProcess(opts: { rootDir: string; env: NodeJS.ProcessEnv; logPath: string }): WorkerProcess {
  let child: Child | null = null;
  return {
    async kill() {
      await child?.stop('SIGKILL');
      child = null;
    },
    start() {
      if (child?.alive) return Promise.resolve();
      child = new Child(
        process.execPath,
        ['--import', 'tsx', join(opts.rootDir, 'src/workers/main.ts')],
        { ...process.env, ...opts.env },
        opts.logPath,
      );
      return Promise.resolve();
    },
    async close() {
      await child?.stop('SIGTERM');
      child = null;
    },
  };
}
