// Where the plan's facts come from: the Hub and RunPod's catalog when they answer (read-only calls, short timeouts),
// otherwise the study's metadata file, figure by figure; each figure says which. Clients, metadata, cache dir and
// clock are injected: this module reads no environment. It composes model-source.ts and gpu-source.ts.
import type { Phase } from '../study/schema.js';
import type { CatalogAccess, FactContext, HubAccess } from './fact-context.js';
import { gpuFacts } from './gpu-source.js';
import type { LoadedMetadata } from './metadata.js';
import { modelFacts } from './model-source.js';
import type { GpuFacts, ModelFacts } from './types.js';

export const DEFAULT_FACT_TIMEOUT_MS = 5_000;
export const DEFAULT_TOKENIZER_DOWNLOAD_TIMEOUT_MS = 60_000;

export interface GatherFactsInput {
  /** The phase to plan: its models, and its target's GPU types. */
  phase: Pick<Phase, 'id' | 'models' | 'target'>;
  /** The Hub, read-only, and its base URL (cited in the sources); null: no Hub. */
  hub: HubAccess | null;
  /** RunPod's catalog and its base URL; null when there is no API key (planning needs none): skipped. */
  catalog: CatalogAccess | null;
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

/**
 * Facts for one phase: every model of it and every GPU type it needs. Live first (Hub model info, config.json and
 * tokenizer files at the resolved commit; RunPod's catalog), then the metadata file for each figure the live source
 * did not give. Never throws for a source that fails: that is a note, and a model or GPU that no source describes
 * is left out with a note naming it.
 */
export async function gatherFacts(input: GatherFactsInput): Promise<GatherFactsOutput> {
  const offline = input.offline ?? false;
  const ctx: FactContext = {
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
