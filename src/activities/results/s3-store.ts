// The shared results store on S3 (or anything that speaks its API: MinIO, Versity, Ceph). Objects are keyed by the
// results path below an optional prefix; an object's ETag (the MD5 of a single-part upload) says whether a local file
// already holds its bytes, so pushes and pulls move only what changed.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type _Object,
} from '@aws-sdk/client-s3';
import { ResultsStoreError, type ResultsStoreOperation } from './errors.js';
import type { ResultsStore } from './store.js';
import { forEachLimited, listLocalFiles, md5File, md5FileOrNull, normEtag } from './s3-files.js';

/** At most this many uploads or downloads at once: enough to hide latency, few enough to be polite to the store. */
const MAX_TRANSFERS = 8;
/** S3 accepts at most 1000 keys per DeleteObjects request. */
const DELETE_BATCH = 1000;
/** Scratch files of the harness, of transfers and of our own pulls: never pruned, they are not records. */
const SCRATCH_SUFFIXES = ['.tmp', '.partial', '.pull-tmp'];
const PULL_TMP = '.pull-tmp';
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const MD5_ETAG_RE = /^[0-9a-f]{32}$/;

export interface S3ResultsStoreOptions {
  /** Absolute local results folder; the store mirrors files below it. */
  resultsDir: string;
  bucket: string;
  /** Key prefix inside the bucket, without slashes at either end; '' for the bucket's root. */
  prefix: string;
  client: S3Client;
}

export interface CreateS3ResultsStoreOptions {
  resultsDir: string;
  /** `s3://bucket` or `s3://bucket/some/prefix`. */
  url: string;
  /** An S3-compatible endpoint (`http://127.0.0.1:7070`); AWS itself when absent. */
  endpoint?: string;
  /** Default 'us-east-1'. */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`); true by default when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** Explicit credentials (tests); otherwise the SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Splits `s3://bucket/optional/prefix` into its bucket and prefix ('' when there is none). */
export function parseStoreUrl(url: string): { bucket: string; prefix: string } {
  const fail = (why: string): never => {
    throw new ResultsStoreError({
      operation: 'config',
      url,
      message: `not a results store url (${why}); expected s3://bucket or s3://bucket/prefix`,
    });
  };
  if (!url.startsWith('s3://')) fail('it must start with s3://');
  const rest = url.slice('s3://'.length);
  if (/[?#\\\s]/.test(rest)) fail('no query, fragment, backslash or whitespace allowed');
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) fail(`"${bucket}" is not a valid bucket name`);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  if (prefix !== '' && !isSafeRelativePath(prefix)) fail(`"${prefix}" is not a safe key prefix`);
  return { bucket, prefix };
}

/** Builds the S3 client and the store for `url`. */
export function createS3ResultsStore(opts: CreateS3ResultsStoreOptions): S3ResultsStore {
  const { bucket, prefix } = parseStoreUrl(opts.url);
  const client = new S3Client({
    region: opts.region ?? 'us-east-1',
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    // Checksums only where the API demands them: S3-compatible servers differ in which trailing checksums they
    // accept, and our own MD5 (Content-MD5 on upload, ETag on download) already covers the bytes.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A stalled store must fail the activity rather than hang it; Temporal retries the activity.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  });
  return new S3ResultsStore({ resultsDir: opts.resultsDir, bucket, prefix, client });
}

/**
 * True for a results path we accept: relative, '/'-separated, no empty, '.' or '..' segments, no backslash or NUL.
 * Applied to every path pushed and to every key listed, so neither a caller nor a stored key reaches outside the folder.
 */
export function isSafeRelativePath(path: string): boolean {
  if (path === '' || path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

export class S3ResultsStore implements ResultsStore {
  readonly url: string;
  readonly #resultsDir: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #client: S3Client;

  constructor(opts: S3ResultsStoreOptions) {
    const prefix = opts.prefix.replace(/^\/+|\/+$/g, '');
    this.url = `s3://${opts.bucket}${prefix ? `/${prefix}` : ''}`;
    if (!isAbsolute(opts.resultsDir)) {
      throw new ResultsStoreError({
        operation: 'config',
        url: this.url,
        message: `resultsDir must be absolute: ${opts.resultsDir}`,
      });
    }
    if (prefix !== '' && !isSafeRelativePath(prefix)) {
      throw new ResultsStoreError({
        operation: 'config',
        url: this.url,
        message: `unsafe key prefix "${opts.prefix}"`,
      });
    }
    this.#resultsDir = resolve(opts.resultsDir);
    this.#bucket = opts.bucket;
    this.#prefix = prefix;
    this.#client = opts.client;
  }

  async push(input: { paths: string[] }): Promise<{ uploaded: string[] }> {
    const paths = [...new Set(input.paths)];
    for (const p of paths) this.#checkPath('push', p);
    const uploaded: string[] = [];
    await forEachLimited(paths, MAX_TRANSFERS, async (path) => {
      const file = this.#localFile(path);
      const size = await this.#regularFileSize('push', path, file);
      const md5 = await md5File(file);
      const key = this.#key(path);
      if ((await this.#headEtag(key)) === md5) return;
      try {
        await this.#client.send(
          new PutObjectCommand({
            Bucket: this.#bucket,
            Key: key,
            Body: createReadStream(file),
            ContentLength: size,
            // The store checks the bytes it received against the MD5 we hashed, and its ETag becomes that MD5.
            ContentMD5: Buffer.from(md5, 'hex').toString('base64'),
          }),
        );
      } catch (err) {
        throw this.#sdkError('put', key, err);
      }
      uploaded.push(path);
    });
    return { uploaded: uploaded.sort() };
  }

  async pull(input: {
    prefix: string;
    prune?: boolean;
    only?: (path: string) => boolean;
  }): Promise<{ downloaded: string[]; removed: string[] }> {
    const sub = input.prefix.replace(/\/+$/, '');
    if (sub !== '') this.#checkPath('pull', sub);
    const wanted = input.only ?? (() => true);
    const objects = new Map([...(await this.#list(sub))].filter(([path]) => wanted(path)));
    const downloaded: string[] = [];
    await forEachLimited([...objects.entries()], MAX_TRANSFERS, async ([path, etag]) => {
      const file = this.#localFile(path);
      if ((await md5FileOrNull(file)) === etag) return;
      await this.#download(path, file, etag);
      downloaded.push(path);
    });
    const removed: string[] = [];
    if (input.prune) {
      for (const path of await listLocalFiles(this.#resultsDir, sub)) {
        if (!wanted(path) || objects.has(path) || SCRATCH_SUFFIXES.some((s) => path.endsWith(s))) continue;
        await rm(this.#localFile(path), { force: true });
        removed.push(path);
      }
    }
    return { downloaded: downloaded.sort(), removed: removed.sort() };
  }

  async remove(input: { paths: string[] }): Promise<void> {
    const paths = [...new Set(input.paths)];
    for (const p of paths) this.#checkPath('remove', p);
    for (let i = 0; i < paths.length; i += DELETE_BATCH) {
      const keys = paths.slice(i, i + DELETE_BATCH).map((p) => this.#key(p));
      let errors;
      try {
        const out = await this.#client.send(
          new DeleteObjectsCommand({
            Bucket: this.#bucket,
            Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        errors = out.Errors ?? [];
      } catch (err) {
        throw this.#sdkError('delete', keys[0] ?? null, err);
      }
      // S3 reports an absent key as deleted, so anything listed here is a real failure.
      const first = errors[0];
      if (first) {
        throw new ResultsStoreError({
          operation: 'delete',
          url: this.url,
          key: first.Key ?? null,
          message: `${first.Code ?? 'error'}: ${first.Message ?? ''} (${errors.length} of ${keys.length} keys failed)`,
        });
      }
    }
  }

  /** Every stored file below `sub`, as results path -> ETag (lower-case hex, quotes stripped). */
  async #list(sub: string): Promise<Map<string, string>> {
    const keyPrefix = [this.#prefix, sub].filter(Boolean).join('/');
    const listPrefix = keyPrefix ? `${keyPrefix}/` : '';
    const strip = this.#prefix ? `${this.#prefix}/` : '';
    const objects = new Map<string, string>();
    let token: string | undefined;
    do {
      let contents: _Object[];
      try {
        const out = await this.#client.send(
          new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: listPrefix, ContinuationToken: token }),
        );
        contents = out.Contents ?? [];
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } catch (err) {
        throw this.#sdkError('list', listPrefix, err);
      }
      for (const o of contents) {
        const key = o.Key ?? '';
        // Folder markers (`a/b/`, made by consoles and some tools) hold no record.
        if (key.endsWith('/') && (o.Size ?? 0) === 0) continue;
        if (!key.startsWith(listPrefix)) this.#unsafeKey(key);
        const path = key.slice(strip.length);
        if (!isSafeRelativePath(path)) this.#unsafeKey(key);
        this.#localFile(path); // the resolved-path check, as a second line
        objects.set(path, normEtag(o.ETag));
      }
    } while (token);
    return objects;
  }

  /** Downloads to `<file>.pull-tmp` and renames over the file, so a reader never sees half a file. */
  async #download(path: string, file: string, etag: string): Promise<void> {
    const key = this.#key(path);
    const tmp = file + PULL_TMP;
    await mkdir(dirname(file), { recursive: true });
    const hash = createHash('md5');
    try {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }));
      if (!(out.Body instanceof Readable)) throw new Error('GetObject returned no readable body');
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(out.Body, hashing, createWriteStream(tmp));
    } catch (err) {
      await rm(tmp, { force: true });
      throw this.#sdkError('get', key, err);
    }
    const got = hash.digest('hex');
    // Only a single-part upload's ETag is its MD5; others (multipart, some encryption modes) cannot be checked here.
    if (MD5_ETAG_RE.test(etag) && got !== etag) {
      await rm(tmp, { force: true });
      throw new ResultsStoreError({
        operation: 'get',
        url: this.url,
        key,
        message: `downloaded bytes have MD5 ${got}, the store's ETag is ${etag} (changed during the pull?)`,
      });
    }
    await rename(tmp, file);
  }

  /** The object's ETag, or null when the store does not hold it. */
  async #headEtag(key: string): Promise<string | null> {
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
      return normEtag(out.ETag);
    } catch (err) {
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return null;
      throw this.#sdkError('head', key, err);
    }
  }

  async #regularFileSize(operation: ResultsStoreOperation, path: string, file: string): Promise<number> {
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new ResultsStoreError({
        operation,
        url: this.url,
        key: this.#key(path),
        message: missing ? `local file ${file} does not exist` : `cannot read local file ${file}: ${String(err)}`,
        cause: err,
      });
    }
    if (!st.isFile()) {
      throw new ResultsStoreError({
        operation,
        url: this.url,
        key: this.#key(path),
        message: `local ${file} is not a regular file`,
      });
    }
    return st.size;
  }

  #key(path: string): string {
    return this.#prefix ? `${this.#prefix}/${path}` : path;
  }

  /** The local file for a results path, refusing anything that would resolve outside the results folder. */
  #localFile(path: string): string {
    const file = resolve(this.#resultsDir, path);
    if (!file.startsWith(this.#resultsDir + sep)) this.#unsafeKey(this.#key(path));
    return file;
  }

  #checkPath(operation: ResultsStoreOperation, path: string): void {
    if (!isSafeRelativePath(path)) {
      throw new ResultsStoreError({
        operation,
        url: this.url,
        key: path,
        message: 'unsafe path: it must be relative and /-separated, without empty, "." or ".." segments',
      });
    }
  }

  #unsafeKey(key: string): never {
    throw new ResultsStoreError({
      operation: 'pull',
      url: this.url,
      key,
      message: 'refusing a stored key that does not map to a file inside the results folder',
    });
  }

  #sdkError(operation: ResultsStoreOperation, key: string | null, err: unknown): ResultsStoreError {
    if (err instanceof ResultsStoreError) return err;
    const status = err instanceof S3ServiceException ? (err.$metadata.httpStatusCode ?? null) : null;
    const name = err instanceof Error ? err.name : 'Error';
    const text = err instanceof Error ? err.message : String(err);
    return new ResultsStoreError({
      operation,
      url: this.url,
      key,
      status,
      message: `${name}: ${text}${status !== null ? ` (HTTP ${status})` : ''}`,
      cause: err,
    });
  }
}
