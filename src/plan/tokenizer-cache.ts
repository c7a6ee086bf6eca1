// The local cache of tokenizer files fetched from the Hub (`<cacheDir>/<owner>--<name>/<commit>/<file>`): sha256
// checks against the Hub, memoised hashing, atomic writes.
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { z } from 'zod';
import { requestSignal, type FactContext, type HubAccess } from './fact-context.js';

// Qwen3's tokenizer.json is 11 MB; the largest on the Hub are a few tens.
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

export function sha256Of(ctx: FactContext, path: string): string {
  const st = statSync(path);
  const key = `${path}:${st.size}:${st.mtimeMs}`;
  let sha = ctx.hashes.get(key);
  if (sha === undefined) {
    sha = createHash('sha256').update(readFileSync(path)).digest('hex');
    ctx.hashes.set(key, sha);
  }
  return sha;
}

/** `Qwen/Qwen3-4B` -> `Qwen--Qwen3-4B`, each part file-system safe and never `.` or `..`. */
function repoCacheSlug(repoId: string): string {
  return repoId
    .split('/')
    .map((p) => p.replace(/[^A-Za-z0-9._-]/g, '_'))
    .map((p) => (p === '.' || p === '..' || p === '' ? '_' : p))
    .join('--');
}

export const isRegularFile = (path: string) => {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
};

function writeAtomic(path: string, bytes: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

/**
 * One tokenizer file of a commit, from the cache when a copy with the Hub's sha256 is there (or the Hub gives none:
 * the commit pins the content), else fetched, checked, and written to the cache atomically.
 */
export async function cachedHubFile(
  ctx: FactContext,
  a: { hub: HubAccess; repoId: string; commit: string; name: string; expectedSha256: string | null },
  schema: z.ZodType,
): Promise<{ path: string; sha256: string; cached: boolean; takenAt: string }> {
  const path = join(ctx.cacheDir, repoCacheSlug(a.repoId), a.commit, a.name);
  if (isRegularFile(path)) {
    const sha = sha256Of(ctx, path);
    if (a.expectedSha256 === null || sha === a.expectedSha256)
      return { path, sha256: sha, cached: true, takenAt: statSync(path).mtime.toISOString() };
  }
  const bytes = await a.hub.client.fetchFile(a.repoId, a.commit, a.name, {
    signal: requestSignal(ctx, ctx.downloadTimeoutMs),
    maxBytes: MAX_TOKENIZER_BYTES,
  });
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (a.expectedSha256 !== null && sha !== a.expectedSha256)
    throw new Error(`${a.name}: sha256 ${sha} is not the Hub's ${a.expectedSha256}`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error(`${a.name} is not JSON`);
  }
  if (!schema.safeParse(doc).success) throw new Error(`${a.name} is not a tokenizer file`);
  writeAtomic(path, bytes);
  return { path, sha256: sha, cached: false, takenAt: ctx.now().toISOString() };
}
