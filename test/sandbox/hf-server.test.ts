// The sandbox Hub against the real `hf` CLI (huggingface_hub 1.17 in .venv), plus its pure safetensors helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSafetensorsShard,
  checkSafetensorsComplete,
  DEFAULT_HF_MODEL_IDS,
  MODEL_INFO_FAULT_TARGET,
  startHfServer,
  type HfRepo,
  type HfServer,
} from '../../sandbox/hf-server/index.js';

const HF_BIN = fileURLToPath(new URL('../../.venv/bin/hf', import.meta.url));
const MiB = 1024 * 1024;
// Big enough that httpx's 10 MiB read chunk reaches the disk before the stall point (DOWNLOAD_CHUNK_SIZE).
const STALL_REPO = 'sandbox/stall-model';
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';

interface HfResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

describe.skipIf(!existsSync(HF_BIN))('sandbox hf-server with the real hf CLI', () => {
  let server: HfServer;
  let workDir: string;
  let dirCount = 0;

  beforeAll(async () => {
    server = await startHfServer({ models: [{ repoId: STALL_REPO, shardCount: 2, shardBytes: 12 * MiB }] });
    workDir = await mkdtemp(join(tmpdir(), 'hf-server-test-'));
  });
  afterEach(() => server.setFaults([]));
  afterAll(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const freshDir = (): string => join(workDir, `dl-${++dirCount}`);
  const repo = (repoId: string): HfRepo => {
    const r = server.getRepo(repoId);
    if (!r) throw new Error(`no repo ${repoId}`);
    return r;
  };

  function startHf(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<HfResult> } {
    const child = spawn(HF_BIN, args, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: workDir,
        HF_HOME: join(workDir, 'hf-home'),
        HF_ENDPOINT: server.url,
        HF_HUB_DISABLE_UPDATE_CHECK: '1',
        HF_HUB_DISABLE_TELEMETRY: '1',
        HF_HUB_DISABLE_PROGRESS_BARS: '1',
        NO_COLOR: '1',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const done = new Promise<HfResult>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode, signal) => resolve({ exitCode, signal, output }));
    });
    return { child, done };
  }
  const hf = (args: string[], env?: Record<string, string>): Promise<HfResult> => startHf(args, env).done;
  const download = (repoId: string, dir: string, env?: Record<string, string>): Promise<HfResult> =>
    hf(['download', repoId, '--revision', repo(repoId).commitSha, '--local-dir', dir], env);

  /** Files hf placed in the dir, without its `.cache/huggingface` bookkeeping. */
  async function listModelFiles(dir: string): Promise<string[]> {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
      .filter((p) => !p.startsWith('.cache/'))
      .sort();
  }

  async function expectRepoOnDisk(repoId: string, dir: string): Promise<void> {
    const r = repo(repoId);
    expect(await listModelFiles(dir)).toEqual(r.files.map((f) => f.path).sort());
    for (const f of r.files) {
      const local = await readFile(join(dir, f.path));
      expect(local.length, f.path).toBe(f.sizeBytes);
      expect(sha256(local), f.path).toBe(f.sha256);
      if (f.path.endsWith('.safetensors')) expect(checkSafetensorsComplete(join(dir, f.path)).complete).toBe(true);
    }
  }

  function requestsFor(file: string): typeof server.requests {
    return server.requests.filter((r) => r.path.endsWith(`/${file}`));
  }

  it.each(DEFAULT_HF_MODEL_IDS)(
    'downloads %s byte-identical, with sizes and sha256 matching the model info',
    async (id) => {
      const dir = freshDir();
      const res = await download(id, dir);
      expect(res.exitCode, res.output).toBe(0);
      await expectRepoOnDisk(id, dir);

      const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
        metadata: { total_size: number };
        weight_map: Record<string, string>;
      };
      const shards = [...new Set(Object.values(index.weight_map))].sort();
      expect(shards).toEqual([SHARD1, SHARD2]);
      expect(index.metadata.total_size).toBeGreaterThan(0);

      // The model info the harness uses for its size check (files_metadata=True sends ?blobs=true).
      const info = (await (
        await fetch(`${server.url}/api/models/${id}/revision/${repo(id).commitSha}?blobs=true`)
      ).json()) as {
        sha: string;
        siblings: { rfilename: string; size: number; lfs?: { sha256: string; size: number } }[];
      };
      expect(info.sha).toBe(repo(id).commitSha);
      for (const s of info.siblings) {
        const local = await readFile(join(dir, s.rfilename));
        expect(s.size).toBe(local.length);
        if (s.lfs) expect(s.lfs).toMatchObject({ sha256: sha256(local), size: local.length });
      }
      expect(info.siblings.filter((s) => s.lfs).map((s) => s.rfilename)).toEqual([SHARD1, SHARD2, 'tokenizer.json']);
    },
  );

  it('passes `hf cache verify` and never advertises Xet', async () => {
    const id = 'Qwen/Qwen3-30B-A3B-Instruct-2507';
    const dir = freshDir();
    expect((await download(id, dir)).exitCode).toBe(0);
    const verify = await hf(['cache', 'verify', id, '--revision', repo(id).commitSha, '--local-dir', dir]);
    expect(verify.exitCode, verify.output).toBe(0);
    expect(verify.output).toContain('All checksums match');

    const head = await fetch(`${server.url}/${id}/resolve/main/${SHARD1}`, { method: 'HEAD', redirect: 'manual' });
    expect(head.status).toBe(302);
    expect(head.headers.get('x-repo-commit')).toBe(repo(id).commitSha);
    expect(head.headers.get('x-linked-size')).toBe(String(repo(id).files.find((f) => f.path === SHARD1)?.sizeBytes));
    expect([...head.headers.keys()].filter((k) => k.startsWith('x-xet') || k === 'link')).toEqual([]);
  });

  it('--include takes one pattern per flag; a second bare pattern becomes a filename', async () => {
    const id = DEFAULT_HF_MODEL_IDS[0];
    const good = freshDir();
    const res = await hf(['download', id, '--include', '*.json', '--include', '*.safetensors', '--local-dir', good]);
    expect(res.exitCode, res.output).toBe(0);
    expect(await listModelFiles(good)).toEqual(
      repo(id)
        .files.map((f) => f.path)
        .filter((p) => p.endsWith('.json') || p.endsWith('.safetensors'))
        .sort(),
    );
    // `--include A B` (the pod-side.md 1.8 sketch) makes B a positional filename: --include is ignored, and B is
    // fetched literally.
    const bad = await hf(['download', id, '--include', '*.json', '*.safetensors', '--local-dir', freshDir()]);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.output).toContain('Ignoring `--include` since filenames have being explicitly set');
  });

  it('an unknown repo or revision exits non-zero with the Hub error the CLI understands', async () => {
    const dir = freshDir();
    const missing = await hf(['download', 'Nobody/no-such-model', '--local-dir', dir]);
    expect(missing.exitCode).not.toBe(0);
    expect(missing.output).toContain("Model 'Nobody/no-such-model' not found");

    const badRev = await hf(['download', DEFAULT_HF_MODEL_IDS[0], '--revision', '0'.repeat(40), '--local-dir', dir]);
    expect(badRev.exitCode).not.toBe(0);
    expect(badRev.output).toContain('Revision not found');
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
  });

  it('5xx on HEAD: the CLI retries with backoff and completes', async () => {
    const id = DEFAULT_HF_MODEL_IDS[1];
    server.setFaults([{ kind: 'error5xx', repoId: id, file: 'config.json', count: 2, status: 503 }]);
    const dir = freshDir();
    const res = await download(id, dir);
    expect(res.exitCode, res.output).toBe(0);
    await expectRepoOnDisk(id, dir);
    // First HEAD fails without retry, then a retrying HEAD fails once more and succeeds after ~1 s.
    expect(requestsFor('config.json').map((r) => `${r.method} ${r.status}`)).toEqual(
      expect.arrayContaining(['HEAD 503', 'HEAD 503', 'HEAD 200', 'GET 200']),
    );
  });

  it('5xx on a file GET: the CLI does not retry and fails clearly; a rerun completes', async () => {
    const id = DEFAULT_HF_MODEL_IDS[2];
    server.setFaults([{ kind: 'error5xx', repoId: id, file: SHARD1, count: 1, methods: ['GET'] }]);
    const dir = freshDir();
    const res = await download(id, dir);
    expect(res.exitCode).not.toBe(0);
    expect(res.output).toContain("Server error '500 Internal Server Error'");
    expect(existsSync(join(dir, SHARD1))).toBe(false);

    const rerun = await download(id, dir);
    expect(rerun.exitCode, rerun.output).toBe(0);
    await expectRepoOnDisk(id, dir);
  });

  it('5xx on the model-info API: fails on an empty dir, but exits 0 without downloading on a non-empty one', async () => {
    const id = DEFAULT_HF_MODEL_IDS[3];
    server.setFaults([{ kind: 'error5xx', repoId: id, file: MODEL_INFO_FAULT_TARGET, count: 2 }]);
    const empty = await download(id, freshDir());
    expect(empty.exitCode).not.toBe(0);
    expect(empty.output).toContain('Local entry not found');

    // snapshot_download falls back to "whatever is in local_dir" when repo_info fails: exit code 0 proves nothing.
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'leftover.txt'), 'partial');
    const nonEmpty = await download(id, dir);
    expect(nonEmpty.exitCode).toBe(0);
    expect(nonEmpty.output).toContain('Returning existing local_dir');
    expect(await listModelFiles(dir)).toEqual(['leftover.txt']);
  });

  it('stall: no progress until killed, then a rerun resumes with a Range request and completes', async () => {
    const shard = repo(STALL_REPO).files.find((f) => f.path === SHARD1);
    if (!shard) throw new Error('no shard');
    server.setFaults([{ kind: 'stall', repoId: STALL_REPO, file: SHARD1, afterBytes: 11 * MiB }]);
    const dir = freshDir();
    // A long read timeout keeps the client's own resume loop out of the picture.
    const { child, done } = startHf(['download', STALL_REPO, '--local-dir', dir], { HF_HUB_DOWNLOAD_TIMEOUT: '120' });

    const incompleteSize = async (): Promise<number> => {
      const dl = join(dir, '.cache/huggingface/download');
      const names = existsSync(dl) ? await readdir(dl) : [];
      const name = names.find((n) => n.endsWith(`.${shard.sha256}.incomplete`));
      return name ? (await stat(join(dl, name))).size : -1;
    };
    let sizeAtStall = -1;
    try {
      await waitFor(async () => (await incompleteSize()) > 0 && existsSync(join(dir, SHARD2)), 30_000);
      // The client writes in read-sized chunks; wait until the last write before the stall has landed.
      await waitFor(async () => {
        const before = await incompleteSize();
        await sleep(1_000);
        sizeAtStall = await incompleteSize();
        return sizeAtStall === before;
      }, 30_000);
      await sleep(2_000);
      expect(await incompleteSize()).toBe(sizeAtStall);
    } finally {
      child.kill('SIGKILL');
    }
    // Part of the shard reached the disk (httpx writes whole 10 MiB reads); the stall point was at 11 MiB.
    expect(sizeAtStall).toBeGreaterThan(0);
    expect(sizeAtStall).toBeLessThan(11 * MiB);
    const killed = await done;
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(dir, SHARD1))).toBe(false);
    expect(checkSafetensorsComplete(join(dir, SHARD2)).complete).toBe(true);

    server.setFaults([]);
    const rerun = await download(STALL_REPO, dir);
    expect(rerun.exitCode, rerun.output).toBe(0);
    await expectRepoOnDisk(STALL_REPO, dir);
    const resumed = requestsFor(SHARD1).filter((r) => r.method === 'GET' && r.range !== null);
    expect(resumed.map((r) => [r.range, r.status])).toEqual([[`bytes=${sizeAtStall}-`, 206]]);
  });

  it('truncate close-early: the CLI notices the short body and fails; nothing corrupt lands; a rerun completes', async () => {
    const id = DEFAULT_HF_MODEL_IDS[4];
    server.setFaults([{ kind: 'truncate', mode: 'close-early', repoId: id, file: SHARD2, keepBytes: 500_000 }]);
    const dir = freshDir();
    const res = await download(id, dir);
    expect(res.exitCode).not.toBe(0);
    expect(res.output).toContain('peer closed connection without sending complete message body');
    expect(existsSync(join(dir, SHARD2))).toBe(false);

    server.setFaults([]);
    expect((await download(id, dir)).exitCode).toBe(0);
    await expectRepoOnDisk(id, dir);
  });

  it('truncate short-file: the CLI accepts a short shard and checkSafetensorsComplete catches it', async () => {
    const id = DEFAULT_HF_MODEL_IDS[5];
    server.setFaults([{ kind: 'truncate', mode: 'short-file', repoId: id, file: SHARD2, keepBytes: 700_000 }]);
    const dir = freshDir();
    const res = await download(id, dir);
    expect(res.exitCode, res.output).toBe(0);
    const check = checkSafetensorsComplete(join(dir, SHARD2));
    expect(check).toMatchObject({ complete: false, actualBytes: 700_000 });
    expect(check.expectedBytes).toBe(repo(id).files.find((f) => f.path === SHARD2)?.sizeBytes);
    expect(checkSafetensorsComplete(join(dir, SHARD1)).complete).toBe(true);
  });
});

describe('sandbox hf-server protocol details', () => {
  let server: HfServer;
  const id = 'Qwen/Qwen3-4B-Instruct-2507';
  beforeAll(async () => {
    server = await startHfServer({ includeDefaultModels: false, models: [{ repoId: id }] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('serves HEAD metadata, Range requests and 416s like the Hub/CDN', async () => {
    const repo = server.getRepo(id);
    const config = repo?.files.find((f) => f.path === 'config.json');
    if (!repo || !config) throw new Error('missing');
    const head = await fetch(`${server.url}/${id}/resolve/${repo.commitSha}/config.json`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(`"${config.gitOid}"`);
    expect(head.headers.get('content-length')).toBe(String(config.sizeBytes));

    const part = await fetch(`${server.url}/${id}/resolve/main/config.json`, { headers: { Range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${config.sizeBytes}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(config.bytes.subarray(10, 20));

    const past = await fetch(`${server.url}/${id}/resolve/main/config.json`, {
      headers: { Range: `bytes=${config.sizeBytes}-` },
    });
    expect(past.status).toBe(416);

    const missing = await fetch(`${server.url}/${id}/resolve/main/nope.bin`, { method: 'HEAD' });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-error-code')).toBe('EntryNotFound');
  });

  it('validates POST /_control/faults', async () => {
    const bad = await fetch(`${server.url}/_control/faults`, {
      method: 'POST',
      body: JSON.stringify({ faults: [{ kind: 'stall', file: 'x' }] }),
    });
    expect(bad.status).toBe(400);
    const ok = await fetch(`${server.url}/_control/faults`, {
      method: 'POST',
      body: JSON.stringify({ faults: [{ kind: 'error5xx', file: 'config.json', count: 1 }] }),
    });
    expect(ok.status).toBe(200);
    expect(server.faults()).toHaveLength(1);
    expect((await fetch(`${server.url}/${id}/resolve/main/config.json`)).status).toBe(500);
    expect((await fetch(`${server.url}/${id}/resolve/main/config.json`)).status).toBe(200);
  });
});

describe('safetensors helpers', () => {
  const tensors = [
    { name: 'a.weight', shape: [4, 8] },
    { name: 'b.bias', shape: [3] },
  ];

  it('builds a deterministic, 8-byte-aligned shard that checks complete', () => {
    const shard = buildSafetensorsShard({ tensors, seed: 's' });
    expect(shard.equals(buildSafetensorsShard({ tensors, seed: 's' }))).toBe(true);
    expect(shard.equals(buildSafetensorsShard({ tensors, seed: 't' }))).toBe(false);
    const headerBytes = Number(shard.readBigUInt64LE(0));
    expect(headerBytes % 8).toBe(0);
    const header = JSON.parse(shard.subarray(8, 8 + headerBytes).toString('utf8')) as Record<string, unknown>;
    expect(header).toMatchObject({
      __metadata__: { format: 'pt' },
      'a.weight': { dtype: 'BF16', shape: [4, 8], data_offsets: [0, 64] },
      'b.bias': { dtype: 'BF16', shape: [3], data_offsets: [64, 70] },
    });
    expect(checkSafetensorsComplete(shard)).toMatchObject({
      complete: true,
      expectedBytes: 8 + headerBytes + 70,
      tensorCount: 2,
    });
  });

  it('reports truncated, padded and garbage files as incomplete', () => {
    const shard = buildSafetensorsShard({ tensors, seed: 's' });
    expect(checkSafetensorsComplete(shard.subarray(0, shard.length - 1)).complete).toBe(false);
    expect(checkSafetensorsComplete(Buffer.concat([shard, Buffer.alloc(1)])).complete).toBe(false);
    expect(checkSafetensorsComplete(shard.subarray(0, 20)).reason).toMatch(/header cut short/);
    expect(checkSafetensorsComplete(Buffer.alloc(4)).reason).toMatch(/shorter than the length prefix/);
  });
});

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(100);
  }
}
