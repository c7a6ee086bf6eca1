// Where the plan's facts come from: the Hub and RunPod's catalog when they answer (read-only calls, short timeouts),
// otherwise the study's metadata file, figure by figure; each figure says which. Clients, metadata, cache dir and
// clock are injected: this module reads no environment.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import type { z } from 'zod';
import {
  ModelConfigSchema,
  TokenizerConfigSchema,
  TokenizerJsonSchema,
  type HubApi,
  type ModelInfo,
} from '../activities/hub/index.js';
import type { GpuType, RunPodApi } from '../activities/runpod/index.js';
import type { Phase } from '../study/schema.js';
import type { LoadedMetadata, MetadataGpu, MetadataModel, MetadataTokenizer, StudyMetadata } from './metadata.js';
import { METADATA_SCHEMA_VERSION, parseMetadata } from './metadata.js';
import type { FactSource, GpuFacts, ModelArchitecture, ModelFacts } from './types.js';

export const DEFAULT_FACT_TIMEOUT_MS = 5_000;
export const DEFAULT_TOKENIZER_DOWNLOAD_TIMEOUT_MS = 60_000;
const MAX_CONFIG_BYTES = 1024 * 1024;
// Qwen3's tokenizer.json is 11 MB; the largest on the Hub are a few tens.
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

export interface GatherFactsInput {
  /** The phase to plan: its models, and its target's GPU types. */
  phase: Pick<Phase, 'id' | 'models' | 'target'>;
  /** The Hub, read-only, and its base URL (cited in the sources); null: no Hub. */
  hub: { client: HubApi; url: string } | null;
  /** RunPod's catalog and its base URL; null when there is no API key (planning needs none): skipped. */
  catalog: { client: Pick<RunPodApi, 'getGpuType'>; url: string } | null;
  /** The study's metadata file: every figure the live sources do not give. */
  metadata: LoadedMetadata | null;
  /** Tokenizer files fetched from the Hub go to `<cacheDir>/<owner>--<name>/<commit>/`. */
  cacheDir: string;
  /** No network at all: every figure from the metadata file. */
  offline?: boolean;
  /** Per Hub or catalog request (model info, config.json, a catalog entry); default 5 s. */
  timeoutMs?: number;
  /** Per tokenizer file download (Qwen3's tokenizer.json is 11 MB); default 60 s. */
  downloadTimeoutMs?: number;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface GatherFactsOutput {
  /** In the phase's order; a model no source describes is left out (and named in `notes`). */
  models: ModelFacts[];
  /** One per GPU type the phase needs; one no source describes is left out (and named in `notes`). */
  gpus: GpuFacts[];
  /** What failed or was skipped, and what was used instead, one line each. */
  notes: string[];
}

/** The GPU types a phase needs: its RunPod candidates' types, or the ssh-host target's declared type. */
export function phaseGpuTypeIds(phase: Pick<Phase, 'target'>): string[] {
  const { target } = phase;
  if (target.kind === 'runpod') return [...new Set(target.candidates.map((c) => c.gpuTypeId))];
  return target.gpuTypeId ? [target.gpuTypeId] : [];
}

interface Ctx {
  hub: GatherFactsInput['hub'];
  catalog: GatherFactsInput['catalog'];
  metadata: LoadedMetadata | null;
  cacheDir: string;
  timeoutMs: number;
  downloadTimeoutMs: number;
  signal: AbortSignal | undefined;
  now: () => Date;
  /** sha256 of files already hashed in this call (the six Qwen models share one tokenizer file). */
  hashes: Map<string, string>;
}

/**
 * Facts for one phase: every model of it and every GPU type it needs. Live first (Hub model info, config.json and
 * tokenizer files at the resolved commit; RunPod's catalog), then the metadata file for each figure the live source
 * did not give. Never throws for a source that fails: that is a note, and a model or GPU that no source describes
 * is left out with a note naming it.
 */
export async function gatherFacts(input: GatherFactsInput): Promise<GatherFactsOutput> {
  const offline = input.offline ?? false;
  const ctx: Ctx = {
    hub: offline ? null : input.hub,
    catalog: offline ? null : input.catalog,
    metadata: input.metadata,
    cacheDir: input.cacheDir,
    timeoutMs: input.timeoutMs ?? DEFAULT_FACT_TIMEOUT_MS,
    downloadTimeoutMs: input.downloadTimeoutMs ?? DEFAULT_TOKENIZER_DOWNLOAD_TIMEOUT_MS,
    signal: input.signal,
    now: input.now ?? (() => new Date()),
    hashes: new Map(),
  };
  const fallback = input.metadata
    ? `figures from ${input.metadata.file} (taken ${input.metadata.metadata.takenAt})`
    : 'and no metadata file to fall back on';
  const notes: string[] = [];
  if (offline) notes.push(`offline: no Hub or RunPod request made; ${fallback}`);
  else {
    if (!input.hub) notes.push(`Hub skipped: no Hub client; ${fallback}`);
    if (!input.catalog) notes.push(`RunPod catalog skipped: no RunPod API key (planning needs none); ${fallback}`);
  }
  const gpuTypeIds = phaseGpuTypeIds(input.phase);
  if (input.phase.target.kind === 'ssh-host' && gpuTypeIds.length === 0)
    notes.push(`phase ${input.phase.id}: the ssh-host target names no gpuTypeId, so no GPU facts for the fit check`);

  const [models, gpus] = await Promise.all([
    Promise.all(input.phase.models.map((m) => modelFacts(ctx, m))),
    // The team's own server (ssh-host) costs nothing per hour: its GPU needs no price.
    Promise.all(gpuTypeIds.map((id) => gpuFacts(ctx, id, { needsPrice: input.phase.target.kind === 'runpod' }))),
  ]);
  for (const r of [...models, ...gpus]) notes.push(...r.notes);
  return {
    models: models.flatMap((r) => (r.facts ? [r.facts] : [])),
    gpus: gpus.flatMap((r) => (r.facts ? [r.facts] : [])),
    notes,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Models

const why = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function requestSignal(ctx: Ctx, timeoutMs: number): AbortSignal {
  return AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(ctx.signal ? [ctx.signal] : [])]);
}

function metadataSource(ctx: Ctx, entrySource: string): FactSource {
  const m = ctx.metadata as LoadedMetadata;
  return { kind: 'metadata-file', detail: `${m.file}: ${entrySource}`, takenAt: m.metadata.takenAt };
}

/** The metadata entry for a model: same repo and revision (or the commit the study pins), else same repo. */
function metadataModel(ctx: Ctx, spec: { repoId: string; revision: string }): MetadataModel | null {
  const entries = ctx.metadata?.metadata.models.filter((e) => e.repoId === spec.repoId) ?? [];
  return (
    entries.find((e) => e.revision === spec.revision || (e.commitSha !== null && e.commitSha === spec.revision)) ??
    entries[0] ??
    null
  );
}

const encPath = (p: string) => p.split('/').map(encodeURIComponent).join('/');

function architectureFromConfig(doc: unknown, notes: string[], repoId: string): ModelArchitecture {
  const parsed = ModelConfigSchema.safeParse(doc);
  if (!parsed.success) throw new Error(`config.json lacks what the fit needs: ${parsed.error.issues[0]?.message}`);
  const c = parsed.data;
  let headDim = c.head_dim ?? null;
  if (headDim === null) {
    if (!c.hidden_size || c.hidden_size % c.num_attention_heads !== 0)
      throw new Error('config.json gives neither head_dim nor a hidden_size divisible by num_attention_heads');
    headDim = c.hidden_size / c.num_attention_heads;
  }
  const dtype = c.torch_dtype ?? c.dtype ?? null;
  if (dtype === null) notes.push(`${repoId}: config.json gives no torch_dtype; taken as bfloat16`);
  return {
    layers: c.num_hidden_layers,
    attentionHeads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headDim,
    dtype: dtype ?? 'bfloat16',
    maxPositionEmbeddings: c.max_position_embeddings ?? null,
  };
}

function architectureFromMetadata(config: MetadataModel['config']): ModelArchitecture {
  return {
    layers: config.num_hidden_layers,
    attentionHeads: config.num_attention_heads,
    kvHeads: config.num_key_value_heads,
    headDim: config.head_dim,
    dtype: config.torch_dtype,
    maxPositionEmbeddings: config.max_position_embeddings,
  };
}

async function modelFacts(
  ctx: Ctx,
  spec: { repoId: string; revision: string },
): Promise<{ facts: ModelFacts | null; notes: string[] }> {
  const { repoId, revision } = spec;
  const notes: string[] = [];
  const entry = metadataModel(ctx, spec);
  if (entry && entry.revision !== revision && entry.commitSha !== revision)
    notes.push(
      `${repoId}: ${ctx.metadata?.file} records revision ${entry.revision}, the study asks for ${revision}; its ` +
        'figures are used as they are',
    );

  let info: ModelInfo | null = null;
  let moe = false;
  const hub = ctx.hub;
  if (hub) {
    try {
      info = await hub.client.modelInfo(repoId, revision, { signal: requestSignal(ctx, ctx.timeoutMs) });
    } catch (err) {
      notes.push(`${repoId}: Hub model info failed (${why(err)})`);
    }
  }
  const takenAt = ctx.now().toISOString();
  const hubSource = (detail: string): FactSource => ({ kind: 'hub', detail, takenAt });

  let weights: { bytes: number; source: FactSource } | null = null;
  let architecture: { value: ModelArchitecture; source: FactSource } | null = null;
  let tokenizer: { value: NonNullable<ModelFacts['tokenizer']>; source: FactSource } | null = null;

  if (hub && info) {
    const shards = info.siblings.filter((s) => s.rfilename.endsWith('.safetensors'));
    const sizes = shards.map((s) => s.lfs?.size ?? s.size ?? null);
    if (shards.length > 0 && sizes.every((b) => b !== null)) {
      weights = {
        bytes: sizes.reduce<number>((a, b) => a + (b ?? 0), 0),
        source: hubSource(
          `${hub.url}/api/models/${encPath(repoId)}/revision/${info.sha}: ${shards.length} *.safetensors files`,
        ),
      };
    } else notes.push(`${repoId}: the Hub lists no sized *.safetensors files at ${info.sha}`);

    const configUrl = `${hub.url}/${encPath(repoId)}/resolve/${info.sha}/config.json`;
    try {
      const bytes = await hub.client.fetchFile(repoId, info.sha, 'config.json', {
        signal: requestSignal(ctx, ctx.timeoutMs),
        maxBytes: MAX_CONFIG_BYTES,
      });
      const configDoc: unknown = JSON.parse(bytes.toString('utf8'));
      architecture = { value: architectureFromConfig(configDoc, notes, repoId), source: hubSource(configUrl) };
      moe = (ModelConfigSchema.safeParse(configDoc).data?.num_experts ?? 0) > 0;
    } catch (err) {
      notes.push(`${repoId}: config.json from the Hub unusable (${why(err)})`);
    }

    try {
      tokenizer = await hubTokenizer(ctx, { repoId, info, url: hub.url, notes });
    } catch (err) {
      notes.push(`${repoId}: tokenizer from the Hub unusable (${why(err)})`);
    }
  }

  const usedMetadata: string[] = [];
  if (!weights && entry) {
    weights = { bytes: entry.weightBytes, source: metadataSource(ctx, entry.source) };
    usedMetadata.push('weights');
  }
  if (!architecture && entry) {
    architecture = { value: architectureFromMetadata(entry.config), source: metadataSource(ctx, entry.source) };
    usedMetadata.push('config');
  }
  if (!tokenizer && entry?.tokenizer) {
    const fromPackage = packageTokenizer(ctx, entry.tokenizer, repoId, notes);
    if (fromPackage) {
      tokenizer = fromPackage;
      usedMetadata.push('tokenizer');
    }
  }
  if (usedMetadata.length && ctx.metadata && ctx.hub)
    notes.push(
      `${repoId}: ${usedMetadata.join(', ')} from ${ctx.metadata.file} (taken ${ctx.metadata.metadata.takenAt})`,
    );

  if (!weights || !architecture) {
    const missing = [...(weights ? [] : ['weight size']), ...(architecture ? [] : ['config.json values'])];
    notes.push(
      `${repoId}: left out of the plan: no ${missing.join(' and ')} ` +
        `(${ctx.hub ? 'the Hub did not give them' : 'no Hub'}; ` +
        `${ctx.metadata ? `${ctx.metadata.file} has no entry for it` : 'no metadata file'})`,
    );
    return { facts: null, notes };
  }
  if (!tokenizer) notes.push(`${repoId}: no tokenizer (token counts cannot be checked)`);

  const activeParamsB = entry?.activeParamsB ?? null;
  if (activeParamsB === null && moe)
    notes.push(`${repoId}: a mixture-of-experts model with no activeParamsB in the metadata file; treated as dense`);
  return {
    facts: {
      repoId,
      revision,
      commitSha: info?.sha ?? entry?.commitSha ?? null,
      weightBytes: weights.bytes,
      architecture: architecture.value,
      activeParamsB,
      tokenizer: tokenizer?.value ?? null,
      source: {
        weights: weights.source,
        config: architecture.source,
        tokenizer: tokenizer?.source ?? null,
        activeParams: entry && entry.activeParamsB !== null ? metadataSource(ctx, entry.source) : null,
      },
    },
    notes,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizers

function sha256Of(ctx: Ctx, path: string): string {
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

const isRegularFile = (path: string) => {
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
async function cachedHubFile(
  ctx: Ctx,
  a: { hub: NonNullable<Ctx['hub']>; repoId: string; commit: string; name: string; expectedSha256: string | null },
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

async function hubTokenizer(
  ctx: Ctx,
  a: { repoId: string; info: ModelInfo; url: string; notes: string[] },
): Promise<{ value: NonNullable<ModelFacts['tokenizer']>; source: FactSource } | null> {
  const hub = ctx.hub as NonNullable<Ctx['hub']>;
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
function packageTokenizer(
  ctx: Ctx,
  t: MetadataTokenizer,
  repoId: string,
  notes: string[],
): { value: NonNullable<ModelFacts['tokenizer']>; source: FactSource } | null {
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

// ---------------------------------------------------------------------------------------------------------------
// GPUs

async function gpuFacts(
  ctx: Ctx,
  gpuTypeId: string,
  opts: { needsPrice: boolean },
): Promise<{ facts: GpuFacts | null; notes: string[] }> {
  const notes: string[] = [];
  const entry: MetadataGpu | null = ctx.metadata?.metadata.gpus.find((g) => g.gpuTypeId === gpuTypeId) ?? null;
  let type: GpuType | null = null;
  const catalog = ctx.catalog;
  if (catalog) {
    try {
      type = await catalog.client.getGpuType(gpuTypeId, { signal: requestSignal(ctx, ctx.timeoutMs) });
      if (type === null) notes.push(`${gpuTypeId}: RunPod's catalog does not list it`);
    } catch (err) {
      notes.push(`${gpuTypeId}: RunPod catalog failed (${why(err)})`);
    }
  }
  const catalogSource: FactSource | null =
    catalog && type
      ? {
          kind: 'catalog',
          detail: `${catalog.url}/catalog/gpus/${encodeURIComponent(gpuTypeId)}`,
          takenAt: ctx.now().toISOString(),
        }
      : null;
  const fromFile = entry ? metadataSource(ctx, entry.source) : null;

  let memory: { gib: number; source: FactSource } | null = null;
  if (catalogSource && type?.memory && type.memory > 0) memory = { gib: type.memory, source: catalogSource };
  else if (entry && fromFile) memory = { gib: entry.memoryGib, source: fromFile };
  if (!memory) {
    notes.push(
      `${gpuTypeId}: left out of the plan: no memory figure ` +
        `(${catalog ? "RunPod's catalog did not give one" : 'no RunPod catalog'}; ` +
        `${ctx.metadata ? `${ctx.metadata.file} has no entry for it` : 'no metadata file'})`,
    );
    return { facts: null, notes };
  }

  // RunPod lists 0 (or nothing) for a cloud that does not offer the type.
  const price = (v: number | null | undefined) => (v && v > 0 ? v : null);
  let pricePerGpuHr: GpuFacts['pricePerGpuHr'] = { secure: null, community: null };
  let priceSource: FactSource | null = null;
  const live = { secure: price(type?.price.secure), community: price(type?.price.community) };
  if (catalogSource && (live.secure !== null || live.community !== null)) {
    pricePerGpuHr = live;
    priceSource = catalogSource;
  } else if (entry && fromFile) {
    pricePerGpuHr = { ...entry.price };
    priceSource = fromFile;
  }
  if (catalogSource && priceSource === fromFile && fromFile)
    notes.push(`${gpuTypeId}: RunPod's catalog gives no price; ${ctx.metadata?.file}'s used`);
  if (opts.needsPrice && pricePerGpuHr.secure === null && pricePerGpuHr.community === null)
    notes.push(`${gpuTypeId}: no price known`);

  const bandwidth = entry?.memoryBandwidthGBps ?? null;
  return {
    facts: {
      gpuTypeId,
      memoryGib: memory.gib,
      memoryBandwidthGBps: bandwidth,
      pricePerGpuHr,
      source: { memory: memory.source, price: priceSource, bandwidth: bandwidth !== null ? fromFile : null },
    },
    notes,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Refreshing the metadata file

const CARRIED_RE = /^\(carried over from the file taken [^,)]+, not refreshed\) /;

export interface WriteMetadataFromFactsInput {
  /** Facts gathered live (gatherFacts without `offline`); figures that came from the metadata file are not refreshed. */
  facts: { models: ModelFacts[]; gpus: GpuFacts[] };
  /** The current file: entries for other phases are kept, tokenizer packages and bandwidths carried over. */
  previous: StudyMetadata | null;
  /** When the facts were taken (ISO time). */
  takenAt: string;
  note?: string;
}

/**
 * The metadata file's new content after a live refresh (for `--save-metadata`): models whose weights and config came
 * from the Hub and GPUs whose memory came from the catalog replace their entries; every other entry of `previous` is
 * kept and marked as carried over, since the file has one date. Pure; write it with writeMetadataFile.
 */
export function writeMetadataFromFacts(input: WriteMetadataFromFactsInput): {
  metadata: StudyMetadata;
  notes: string[];
} {
  const { previous, takenAt } = input;
  const notes: string[] = [];
  const carried = (source: string) =>
    `(carried over from the file taken ${previous?.takenAt ?? 'earlier'}, not refreshed) ${source.replace(CARRIED_RE, '')}`;

  const models = new Map<string, MetadataModel>();
  for (const m of previous?.models ?? []) models.set(`${m.repoId}@${m.revision}`, { ...m, source: carried(m.source) });
  for (const f of input.facts.models) {
    const key = `${f.repoId}@${f.revision}`;
    const old = previous?.models.find((m) => m.repoId === f.repoId && m.revision === f.revision) ?? null;
    if (f.source.weights.kind !== 'hub' || f.source.config.kind !== 'hub') {
      notes.push(`${f.repoId}: not refreshed (its figures did not come from the Hub)`);
      continue;
    }
    let tokenizer: MetadataTokenizer | null = old?.tokenizer ?? null;
    if (tokenizer && f.tokenizer && f.tokenizer.sha256 !== tokenizer.sha256) {
      notes.push(
        `${f.repoId}: the Hub's tokenizer.json (sha256 ${f.tokenizer.sha256}) is not the one in ${tokenizer.package}; ` +
          'the metadata file keeps no tokenizer for it',
      );
      tokenizer = null;
    }
    if (!tokenizer) notes.push(`${f.repoId}: no packaged tokenizer recorded (offline plans cannot count its tokens)`);
    const a = f.architecture;
    models.set(key, {
      repoId: f.repoId,
      revision: f.revision,
      commitSha: f.commitSha,
      weightBytes: f.weightBytes,
      activeParamsB: f.activeParamsB,
      config: {
        num_hidden_layers: a.layers,
        num_attention_heads: a.attentionHeads,
        num_key_value_heads: a.kvHeads,
        head_dim: a.headDim,
        torch_dtype: a.dtype,
        max_position_embeddings: a.maxPositionEmbeddings,
      },
      tokenizer,
      source:
        `Hub: weights ${f.source.weights.detail}; config ${f.source.config.detail}` +
        (f.activeParamsB !== null ? '; activeParamsB kept from the previous file' : ''),
    });
  }

  const gpus = new Map<string, MetadataGpu>();
  for (const g of previous?.gpus ?? []) gpus.set(g.gpuTypeId, { ...g, source: carried(g.source) });
  for (const f of input.facts.gpus) {
    if (f.source.memory.kind !== 'catalog') {
      notes.push(`${f.gpuTypeId}: not refreshed (its memory did not come from RunPod's catalog)`);
      continue;
    }
    const priced = f.source.price?.kind === 'catalog';
    const old = previous?.gpus.find((g) => g.gpuTypeId === f.gpuTypeId) ?? null;
    gpus.set(f.gpuTypeId, {
      gpuTypeId: f.gpuTypeId,
      memoryGib: f.memoryGib,
      memoryBandwidthGBps: f.memoryBandwidthGBps,
      price: priced ? { ...f.pricePerGpuHr } : (old?.price ?? { secure: null, community: null }),
      source:
        `RunPod catalog ${f.source.memory.detail}: memory${priced ? ' and prices' : ' (prices kept from the previous file)'}` +
        (f.memoryBandwidthGBps !== null ? '; bandwidth kept from the previous file' : ''),
    });
  }

  const metadata = parseMetadata(
    {
      schemaVersion: METADATA_SCHEMA_VERSION,
      takenAt,
      note:
        input.note ??
        `Refreshed ${takenAt} from the Hub and RunPod's catalog (read-only). Entries marked "carried over" were not ` +
          'refreshed and keep the figures of the previous file.',
      models: [...models.values()],
      gpus: [...gpus.values()],
    },
    '<refreshed metadata>',
  );
  return { metadata, notes };
}
