import { z } from 'zod';

/** `GET /api/models/{repo}/revision/{rev}?blobs=true` (what huggingface_hub's `files_metadata=True` sends). */
export const ModelInfoSchema = z.object({
  id: z.string(),
  /** The commit the revision resolves to. */
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  siblings: z.array(
    z.object({
      rfilename: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      lfs: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional(),
    }),
  ),
});
export type ModelInfo = z.infer<typeof ModelInfoSchema>;

const configCount = z.number().int().positive();
const ConfigCoreSchema = z.looseObject({
  num_hidden_layers: configCount,
  num_attention_heads: configCount,
  /** Absent in configs without grouped-query attention: as many KV heads as attention heads. */
  num_key_value_heads: configCount.nullish(),
  /** Absent in many configs: hidden_size / num_attention_heads. */
  head_dim: configCount.nullish(),
  hidden_size: configCount.nullish(),
  /** transformers >= 4.56 writes `dtype`, older versions `torch_dtype`. */
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
  max_position_embeddings: configCount.nullish(),
  /** MoE configs (Qwen3-MoE: 128 experts). */
  num_experts: z.number().int().nonnegative().nullish(),
});

/**
 * A model's `config.json`: the values the memory fit needs. Multimodal configs keep the language model's values
 * under `text_config`; those are read when the top level has none.
 */
export const ModelConfigSchema = z.preprocess((doc) => {
  if (typeof doc !== 'object' || doc === null || 'num_hidden_layers' in doc) return doc;
  const text = (doc as { text_config?: unknown }).text_config;
  return typeof text === 'object' && text !== null ? { ...doc, ...text } : doc;
}, ConfigCoreSchema);
export type ModelConfig = z.infer<typeof ModelConfigSchema>;

/** `tokenizer.json` (Hugging Face tokenizers): only checked to be one, the file is kept byte for byte. */
export const TokenizerJsonSchema = z.looseObject({ model: z.looseObject({}) });
/** `tokenizer_config.json`: a JSON object (chat template, special tokens). */
export const TokenizerConfigSchema = z.looseObject({});

/** Output of `python3 -m harness.verify_model` (pod/harness/verify_model.py). */
export const VerifyResultSchema = z.object({
  ok: z.boolean(),
  commitSha: z.string(),
  problems: z.array(z.string()),
  /** Files it rejected and deleted (with hf's local-dir metadata), so the next download fetches them again. */
  deleted: z.array(z.string()),
  files: z.array(z.object({ path: z.string(), bytes: z.number().int().nonnegative() })),
  sha256Verified: z.boolean(),
});

/** The `.complete` marker written next to a verified model. */
export const CompleteMarkerSchema = z.object({
  repo: z.string(),
  revision: z.string(),
  commitSha: z.string(),
  files: z.array(z.object({ path: z.string(), bytes: z.number().int().nonnegative() })),
  sha256Verified: z.boolean().optional(),
});

/** `<model>.download.no-xet`: why an earlier attempt turned Xet off (kept on the pod for retries). */
export const XetFallbackSchema = z.object({
  reason: z.enum(['stall', 'xet-error']),
  atBytes: z.number().nonnegative(),
  detail: z.string(),
});
