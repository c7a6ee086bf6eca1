// The S3 results store against a real S3-compatible server (versitygw over a temp folder).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultsStoreError } from '../../src/activities/results/errors.js';
import {
  createS3ResultsStore,
  isSafeRelativePath,
  parseStoreUrl,
  type S3ResultsStore,
} from '../../src/activities/results/s3-store.js';
import { startS3Server, type S3Server } from '../../sandbox/s3-server.js';

const BUCKET = 'results';

// No skip without the binary: `npm run setup` builds it, and a missing one fails here naming that command.
describe('S3ResultsStore against versitygw', () => {
  let server: S3Server;
  let workDir: string;
  let raw: S3Client;
  let count = 0;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 's3-store-test-'));
    server = await startS3Server({ dir: join(workDir, 'gw') });
    await server.createBucket(BUCKET);
    raw = new S3Client({
      region: server.region,
      endpoint: server.url,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    });
  });
  afterAll(async () => {
    raw?.destroy();
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** A fresh, empty results folder. */
  async function freshDir(): Promise<string> {
    const dir = join(workDir, `results-${++count}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** A store over `resultsDir` at `s3://results/<prefix>`; every test takes its own prefix. */
  function storeFor(resultsDir: string, prefix: string, secret = server.secretKey): S3ResultsStore {
    return createS3ResultsStore({
      resultsDir,
      url: prefix ? `s3://${BUCKET}/${prefix}` : `s3://${BUCKET}`,
      endpoint: server.url,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: secret },
    });
  }

  async function put(dir: string, path: string, body: string): Promise<void> {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), body);
  }

  const keysUnder = (prefix: string): Promise<string[]> => server.listKeys(BUCKET, prefix);

  it('uploads once, skips unchanged bytes on the next push and uploads a changed file again', async () => {
    const dir = await freshDir();
    const store = storeFor(dir, 'push-test/shared');
    const paths = ['rq1/p1/m/r1/manifest.json', 'rq1/p1/m/r1/metrics.json'];
    for (const p of paths) await put(dir, p, `content of ${p}`);

    expect(store.url).toBe('s3://results/push-test/shared');
    expect(await store.push({ paths })).toEqual({ uploaded: paths });
    expect(await keysUnder('push-test/')).toEqual(paths.map((p) => `push-test/shared/${p}`));

    expect(await store.push({ paths })).toEqual({ uploaded: [] });

    await put(dir, paths[1]!, 'changed');
    expect(await store.push({ paths })).toEqual({ uploaded: [paths[1]] });
  });

  it('keys objects by the bare path when the prefix is empty', async () => {
    const dir = await freshDir();
    const store = storeFor(dir, '');
    await put(dir, 'root-test/a.json', '{}');
    expect(store.url).toBe('s3://results');
    await store.push({ paths: ['root-test/a.json'] });
    expect(await keysUnder('root-test/')).toEqual(['root-test/a.json']);
  });

  it('pushes more files than the transfer limit and pulls them into an empty folder byte for byte', async () => {
    const src = await freshDir();
    const paths = Array.from({ length: 20 }, (_, i) => `rq2/phase/model-${i % 3}/r${i}/out.jsonl`);
    // Includes a 3 MiB file so the streaming path, not only tiny bodies, is covered.
    const big = Buffer.alloc(3 * 1024 * 1024, 7).toString('latin1');
    for (const [i, p] of paths.entries()) await put(src, p, i === 0 ? big : `line ${i}\n`.repeat(i + 1));
    expect((await storeFor(src, 'pull-test').push({ paths })).uploaded).toHaveLength(paths.length);

    const dst = await freshDir();
    const pulled = await storeFor(dst, 'pull-test').pull({ prefix: 'rq2' });
    expect(pulled).toEqual({ downloaded: [...paths].sort(), removed: [] });
    // Buffer.equals: toEqual walks a 3 MiB buffer byte by byte, which takes seconds.
    for (const p of paths) expect((await readFile(join(dst, p))).equals(await readFile(join(src, p))), p).toBe(true);
    expect(existsSync(join(dst, `${paths[0]}.pull-tmp`))).toBe(false);

    // Nothing changed: nothing moves.
    expect(await storeFor(dst, 'pull-test').pull({ prefix: 'rq2' })).toEqual({ downloaded: [], removed: [] });
  });

  it('overwrites a stale local file on pull (the store wins)', async () => {
    const src = await freshDir();
    const dst = await freshDir();
    await put(src, 'rq3/a.json', 'fresh');
    await put(dst, 'rq3/a.json', 'stale');
    await storeFor(src, 'stale-test').push({ paths: ['rq3/a.json'] });

    expect(await storeFor(dst, 'stale-test').pull({ prefix: 'rq3' })).toEqual({
      downloaded: ['rq3/a.json'],
      removed: [],
    });
    expect(await readFile(join(dst, 'rq3/a.json'), 'utf8')).toBe('fresh');
  });

  it('removes local files the store lacks only with prune, and keeps scratch files and other prefixes', async () => {
    const src = await freshDir();
    const dst = await freshDir();
    await put(src, 'rq4/kept.json', 'kept');
    await storeFor(src, 'prune-test').push({ paths: ['rq4/kept.json'] });
    await put(dst, 'rq4/extra/gone.json', 'deleted elsewhere');
    await put(dst, 'rq4/.metrics.json.12.tmp', 'scratch');
    await put(dst, 'rq4/x.json.partial', 'scratch');
    await put(dst, 'other/elsewhere.json', 'not below the prefix');
    const store = storeFor(dst, 'prune-test');

    expect(await store.pull({ prefix: 'rq4' })).toEqual({ downloaded: ['rq4/kept.json'], removed: [] });
    expect(existsSync(join(dst, 'rq4/extra/gone.json'))).toBe(true);

    expect(await store.pull({ prefix: 'rq4', prune: true })).toEqual({
      downloaded: [],
      removed: ['rq4/extra/gone.json'],
    });
    expect(existsSync(join(dst, 'rq4/extra/gone.json'))).toBe(false);
    expect(existsSync(join(dst, 'rq4/.metrics.json.12.tmp'))).toBe(true);
    expect(existsSync(join(dst, 'rq4/x.json.partial'))).toBe(true);
    expect(existsSync(join(dst, 'other/elsewhere.json'))).toBe(true);
  });

  it('pulls and prunes only the paths a filter accepts, across the whole store', async () => {
    const src = await freshDir();
    const dst = await freshDir();
    const kept = (path: string) => /^[^/]+\/kept-pods\/[^/]+\.json$/.test(path);
    await put(src, 'rq8/kept-pods/pod1.json', 'record');
    await put(src, 'rq8/phase1/m/r1/predictions.jsonl', 'large');
    await storeFor(src, 'only-test').push({ paths: ['rq8/kept-pods/pod1.json', 'rq8/phase1/m/r1/predictions.jsonl'] });
    await put(dst, 'rq9/kept-pods/old.json', 'fetched elsewhere since');
    await put(dst, 'rq9/phase1/local-only.json', 'not a record');

    expect(await storeFor(dst, 'only-test').pull({ prefix: '', prune: true, only: kept })).toEqual({
      downloaded: ['rq8/kept-pods/pod1.json'],
      removed: ['rq9/kept-pods/old.json'],
    });
    expect(existsSync(join(dst, 'rq8/phase1/m/r1/predictions.jsonl'))).toBe(false);
    expect(existsSync(join(dst, 'rq9/phase1/local-only.json'))).toBe(true);
  });

  it('accepts a pull whose local folder does not exist yet', async () => {
    const dst = await freshDir();
    expect(await storeFor(dst, 'empty-test').pull({ prefix: 'nothing/here', prune: true })).toEqual({
      downloaded: [],
      removed: [],
    });
  });

  it('removes from the store, and a pruning pull then removes the local copy elsewhere', async () => {
    const a = await freshDir();
    const b = await freshDir();
    await put(a, 'rq5/r1/manifest.json', 'one');
    await put(a, 'rq5/r2/manifest.json', 'two');
    await storeFor(a, 'remove-test').push({ paths: ['rq5/r1/manifest.json', 'rq5/r2/manifest.json'] });
    await storeFor(b, 'remove-test').pull({ prefix: 'rq5' });
    expect(existsSync(join(b, 'rq5/r1/manifest.json'))).toBe(true);

    // An absent key is fine.
    await storeFor(a, 'remove-test').remove({ paths: ['rq5/r1/manifest.json', 'rq5/never-there.json'] });
    expect(await keysUnder('remove-test/')).toEqual(['remove-test/rq5/r2/manifest.json']);

    expect(await storeFor(b, 'remove-test').pull({ prefix: 'rq5', prune: true })).toEqual({
      downloaded: [],
      removed: ['rq5/r1/manifest.json'],
    });
    expect(existsSync(join(b, 'rq5/r1/manifest.json'))).toBe(false);
    expect(existsSync(join(b, 'rq5/r2/manifest.json'))).toBe(true);
  });

  it('refuses unsafe paths on push and remove, and names a missing local file', async () => {
    const dir = await freshDir();
    const store = storeFor(dir, 'unsafe-test');
    for (const bad of ['../x', '/etc/passwd', 'a//b', 'a/./b', 'a/../../b', '', 'a\\b']) {
      await expect(store.push({ paths: [bad] }), bad).rejects.toBeInstanceOf(ResultsStoreError);
      await expect(store.remove({ paths: [bad] }), bad).rejects.toBeInstanceOf(ResultsStoreError);
    }
    await expect(store.pull({ prefix: '../up' })).rejects.toBeInstanceOf(ResultsStoreError);

    const missing = store.push({ paths: ['rq6/missing.json'] });
    await expect(missing).rejects.toBeInstanceOf(ResultsStoreError);
    await expect(missing).rejects.toThrow(join(dir, 'rq6/missing.json'));
    expect(await keysUnder('unsafe-test/')).toEqual([]);
  });

  it('refuses a pull when a stored key does not map to a safe local path, before downloading anything', async () => {
    // versitygw cleans `..` out of keys on write (`p/../evil` is stored as `evil`), so a `..` key cannot be planted;
    // a backslash survives, and the same check refuses it. The `..` cases are covered by isSafeRelativePath below.
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'key-test/rq7/a.json', Body: 'fine' }));
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'key-test/rq7/..\\evil', Body: 'bad' }));
    const dst = await freshDir();
    const pull = storeFor(dst, 'key-test').pull({ prefix: 'rq7' });
    await expect(pull).rejects.toBeInstanceOf(ResultsStoreError);
    await expect(pull).rejects.toThrow('key-test/rq7/..\\evil');
    expect(existsSync(join(dst, 'rq7/a.json'))).toBe(false);
  });

  it('accepts only relative, /-separated paths without empty, "." or ".." segments', () => {
    for (const ok of ['a', 'a/b.json', 'rq1/phase2a/qwen3-4b/zero-shot/r1/manifest.json', '.hidden', 'a..b']) {
      expect(isSafeRelativePath(ok), ok).toBe(true);
    }
    for (const bad of ['', '..', '../evil', 'a/..', 'a/../b', './a', '/a', 'a/', 'a//b', 'a\\b', 'a\0b']) {
      expect(isSafeRelativePath(bad), bad).toBe(false);
    }
  });

  it('reports a wrong secret as a ResultsStoreError naming the url, never the secret', async () => {
    const dir = await freshDir();
    await put(dir, 'rq8/a.json', 'x');
    const secret = `wrong-${server.secretKey}`;
    const store = storeFor(dir, 'auth-test', secret);
    for (const attempt of [() => store.push({ paths: ['rq8/a.json'] }), () => store.pull({ prefix: 'rq8' })]) {
      const err = await attempt().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ResultsStoreError);
      const e = err as ResultsStoreError;
      expect(e.message).toContain('s3://results/auth-test');
      expect(e.message).not.toContain(secret);
      expect(e.message).not.toContain(server.secretKey);
      expect(e.status).toBe(403);
    }
  });
});

describe('parseStoreUrl', () => {
  it('splits bucket and prefix', () => {
    expect(parseStoreUrl('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseStoreUrl('s3://my-bucket/')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseStoreUrl('s3://my.bucket/team/results/')).toEqual({ bucket: 'my.bucket', prefix: 'team/results' });
  });

  it('refuses anything else with a clear error', () => {
    for (const bad of [
      'http://bucket/x',
      'bucket/x',
      's3://',
      's3://UPPER',
      's3://ab',
      's3://bucket/../x',
      's3://bucket//x',
      's3://bucket/x?y',
    ]) {
      expect(() => parseStoreUrl(bad), bad).toThrow(ResultsStoreError);
    }
    expect(() => parseStoreUrl('http://bucket/x')).toThrow(/expected s3:\/\/bucket or s3:\/\/bucket\/prefix/);
  });
});
