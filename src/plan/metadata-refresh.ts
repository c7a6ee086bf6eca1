// The metadata file's new content after a live refresh (`--save-metadata`): live figures replace their entries, every
// other entry is carried over and marked so. Pure.
import type { MetadataGpu, MetadataModel, MetadataTokenizer, StudyMetadata } from './metadata.js';
import { METADATA_SCHEMA_VERSION, parseMetadata } from './metadata.js';
import type { GpuFacts, ModelFacts } from './types.js';

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
