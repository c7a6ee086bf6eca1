// A GPU type's facts: memory and prices from RunPod's catalog, else the metadata file's entry; bandwidth from the
// metadata file only.
import type { GpuType } from '../activities/runpod/index.js';
import { metadataSource, requestSignal, why, type FactContext } from './fact-context.js';
import type { MetadataGpu } from './metadata.js';
import type { FactSource, GpuFacts } from './types.js';

/** One GPU type's facts, or null (with a note) when no source gives its memory; never throws for a failing source. */
export async function gpuFacts(
  ctx: FactContext,
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
