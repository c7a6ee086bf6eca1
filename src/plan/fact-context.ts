// What every fact source of one gatherFacts call shares: the injected clients, metadata file, cache dir, clock and
// timeouts, and the small helpers for request signals and source citations.
import type { HubApi } from '../activities/hub/index.js';
import type { RunPodApi } from '../activities/runpod/index.js';
import type { LoadedMetadata } from './metadata.js';
import type { FactSource } from './types.js';

/** The Hub, read-only, and its base URL (cited in the sources). */
export interface HubAccess {
  client: HubApi;
  url: string;
}

/** RunPod's catalog and its base URL (cited in the sources). */
export interface CatalogAccess {
  client: Pick<RunPodApi, 'getGpuType'>;
  url: string;
}

export interface FactContext {
  hub: HubAccess | null;
  catalog: CatalogAccess | null;
  metadata: LoadedMetadata | null;
  cacheDir: string;
  timeoutMs: number;
  downloadTimeoutMs: number;
  signal: AbortSignal | undefined;
  now: () => Date;
  /** sha256 of files already hashed in this call (the six Qwen models share one tokenizer file). */
  hashes: Map<string, string>;
}

export const why = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function requestSignal(ctx: FactContext, timeoutMs: number): AbortSignal {
  return AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(ctx.signal ? [ctx.signal] : [])]);
}

export function metadataSource(ctx: FactContext, entrySource: string): FactSource {
  const m = ctx.metadata as LoadedMetadata;
  return { kind: 'metadata-file', detail: `${m.file}: ${entrySource}`, takenAt: m.metadata.takenAt };
}

export const encPath = (p: string) => p.split('/').map(encodeURIComponent).join('/');
