// A real S3-compatible server for tests: the Versity S3 gateway (versitygw) over a local folder. Each bucket is a
// subfolder of `dir`; object metadata (the ETag among it) lives in extended attributes, so `dir` must be on a
// filesystem with user xattrs (ext4, xfs, btrfs and tmpfs all have them).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 50;
const CLOSE_TIMEOUT_MS = 5_000;
/** Another process may take the port between our probe and the gateway's bind; try a fresh one a few times. */
const START_ATTEMPTS = 3;
const REGION = 'us-east-1';

export interface S3Server {
  /** `http://127.0.0.1:PORT`, for the S3 client's `endpoint` (path-style). */
  url: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** The gateway's root folder: one subfolder per bucket. */
  dir: string;
  /** Creates a bucket with the server's root credentials. */
  createBucket(name: string): Promise<void>;
  /** Every key in `bucket` that starts with `prefix` (all when omitted), sorted. */
  listKeys(bucket: string, prefix?: string): Promise<string[]>;
  /** Stops the gateway and waits for it to exit. */
  close(): Promise<void>;
}

/** The versitygw binary: `VERSITYGW_PATH`, else the project-local build from `scripts/setup.sh`. */
export function findVersitygwBinary(rootDir: string = ROOT_DIR, env: NodeJS.ProcessEnv = process.env): string {
  if (env.VERSITYGW_PATH) {
    if (!existsSync(env.VERSITYGW_PATH)) throw new Error(`VERSITYGW_PATH=${env.VERSITYGW_PATH} does not exist`);
    return env.VERSITYGW_PATH;
  }
  const local = resolve(rootDir, '.tools/bin/versitygw');
  if (existsSync(local)) return local;
  throw new Error(
    'No versitygw found. Run `npm run setup` (builds github.com/versity/versitygw v1.8.0 into .tools/bin) ' +
      'or set VERSITYGW_PATH.',
  );
}

/** Starts versitygw's posix backend over `dir` (created if missing) on a free loopback port. */
export async function startS3Server(opts: { dir: string }): Promise<S3Server> {
  const binary = findVersitygwBinary();
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const accessKey = `test-${randomBytes(6).toString('hex')}`;
  const secretKey = randomBytes(24).toString('hex');
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const gw = spawnGateway({ binary, dir, port, accessKey, secretKey });
    try {
      await waitUntilAnswering(url, gw);
    } catch (err) {
      lastError = err;
      await stop(gw.child);
      continue;
    }
    const client = new S3Client({
      region: REGION,
      endpoint: url,
      forcePathStyle: true,
      credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    });
    return {
      url,
      accessKey,
      secretKey,
      region: REGION,
      dir,
      createBucket: async (name) => {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      },
      listKeys: async (bucket, prefix = '') => {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const out = await client.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
          );
          for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
          token = out.IsTruncated ? out.NextContinuationToken : undefined;
        } while (token);
        return keys.sort();
      },
      close: async () => {
        client.destroy();
        await stop(gw.child);
      },
    };
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

interface Gateway {
  child: ChildProcess;
  /** The last few KiB of its output, for error messages. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnGateway(opts: {
  binary: string;
  dir: string;
  port: number;
  accessKey: string;
  secretKey: string;
}): Gateway {
  const args = [
    '--access',
    opts.accessKey,
    '--secret',
    opts.secretKey,
    '--port',
    `127.0.0.1:${opts.port}`,
    '--region',
    REGION,
    '--quiet',
    'posix',
    opts.dir,
  ];
  // A clean environment: versitygw reads many VGW_* and ROOT_* variables that must not leak in from the caller.
  const child = spawn(opts.binary, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? opts.dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4096);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', (err) => {
      output += `\nspawn failed: ${err.message}`;
      done({ code: null, signal: null });
    });
  });
  return { child, output: () => output, exited };
}

/** Polls until the gateway answers any HTTP response (an unsigned request gets 403: that is an answer). */
async function waitUntilAnswering(url: string, gw: Gateway): Promise<void> {
  const state: { exit: { code: number | null; signal: NodeJS.Signals | null } | null } = { exit: null };
  void gw.exited.then((e) => (state.exit = e));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (state.exit) {
      const { code, signal } = state.exit;
      throw new Error(`versitygw exited before answering (code ${code}, signal ${signal}):\n${gw.output()}`);
    }
    try {
      await fetch(url, { signal: AbortSignal.timeout(1_000) });
      return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`versitygw did not answer on ${url} within ${READY_TIMEOUT_MS} ms:\n${gw.output()}`);
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  // No pid: it never started. An exit code or signal: it is already gone.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** A loopback port that was free a moment ago (the kernel picks it for port 0). */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? done(port) : fail(new Error('no port from the kernel'))));
    });
  });
}
