// A model's facts: weight size, config.json and tokenizer from the Hub at the resolved commit, else the metadata
// file's entry for it, figure by figure, each with its source.
import { ModelConfigSchema, type ModelInfo } from '../activities/hub/index.js';
import { encPath, metadataSource, requestSignal, why, type FactContext } from './fact-context.js';
import type { MetadataModel } from './metadata.js';
import { hubTokenizer, packageTokenizer, type TokenizerFound } from './tokenizer-source.js';
import type { FactSource, ModelArchitecture, ModelFacts } from './types.js';

const MAX_CONFIG_BYTES = 1024 * 1024;

/** The metadata entry for a model: same repo and revision (or the commit the study pins), else same repo. */
function metadataModel(ctx: FactContext, spec: { repoId: string; revision: string }): MetadataModel | null {
  const entries = ctx.metadata?.metadata.models.filter((e) => e.repoId === spec.repoId) ?? [];
  return (
    entries.find((e) => e.revision === spec.revision || (e.commitSha !== null && e.commitSha === spec.revision)) ??
    entries[0] ??
    null
  );
}

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

/** One model's facts, or null (with a note) when no source gives its weights and config; never throws for a source. */
export async function modelFacts(
  ctx: FactContext,
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
  let tokenizer: TokenizerFound | null = null;

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
