// Tiny, deterministic stand-ins for Hub model repos: real file names and JSON shapes, kilobyte-to-megabyte weights.
import { createHash } from 'node:crypto';
import { buildSafetensorsShard, tensorDataBytes, type SafetensorsTensorSpec } from './safetensors.js';

/** The repos the sandbox serves by default, under their real names. */
export const DEFAULT_HF_MODEL_IDS = [
  'Qwen/Qwen3-4B-Instruct-2507',
  'Qwen/Qwen3-4B-Thinking-2507',
  'Qwen/Qwen3-30B-A3B-Instruct-2507',
  'Qwen/Qwen3-30B-A3B-Thinking-2507',
  'Qwen/Qwen3-235B-A22B-Instruct-2507',
  'Qwen/Qwen3-235B-A22B-Thinking-2507',
] as const;

export const DEFAULT_SHARD_COUNT = 2;
export const DEFAULT_SHARD_BYTES = 1536 * 1024;

export interface HfModelSpec {
  /** `owner/name`, e.g. `Qwen/Qwen3-30B-A3B-Instruct-2507`. */
  repoId: string;
  /** 40-hex commit the repo is at; defaults to {@link commitShaFor}(repoId). `main` also resolves to it. */
  commitSha?: string;
  /** Number of `model-0000K-of-0000N.safetensors` shards. */
  shardCount?: number;
  /** Approximate tensor-data bytes per shard (the header adds a few hundred bytes). */
  shardBytes?: number;
  /** Replaces the generated config.json. */
  config?: Record<string, unknown>;
}

export interface HfRepoFile {
  /** Path in the repo (the Hub's `rfilename`). */
  path: string;
  bytes: Buffer;
  sizeBytes: number;
  sha256: string;
  /** Git blob id of what git stores: the file itself, or its LFS pointer. */
  gitOid: string;
  /** Set for files stored with Git LFS (served through a redirect, like the Hub's CDN). */
  lfs: { pointerSizeBytes: number } | null;
}

export interface HfRepo {
  repoId: string;
  commitSha: string;
  /** Sorted by path, as the Hub lists siblings. */
  files: readonly HfRepoFile[];
  /** BF16 parameter count of the stand-in weights (the model info's `safetensors.total`). */
  parameterCount: number;
}

/** The deterministic commit sha the sandbox assigns to a repo. */
export function commitShaFor(repoId: string): string {
  return createHash('sha1').update(`hf-sandbox-commit:${repoId}`).digest('hex');
}

/** Which files are stored with Git LFS (the Qwen repos' .gitattributes track these). */
export function isLfsPath(path: string): boolean {
  return path.endsWith('.safetensors') || path === 'tokenizer.json';
}

export function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index)}-of-${pad(count)}.safetensors`;
}

/** Generates every file of a stand-in repo; same spec, same bytes. */
export function buildHfRepo(spec: HfModelSpec): HfRepo {
  const shardCount = spec.shardCount ?? DEFAULT_SHARD_COUNT;
  const shardBytes = spec.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new Error(`shardCount must be >= 1: ${shardCount}`);
  const commitSha = spec.commitSha ?? commitShaFor(spec.repoId);
  if (!/^[0-9a-f]{40}$/.test(commitSha)) throw new Error(`commitSha must be 40 hex digits: ${commitSha}`);

  const contents = new Map<string, Buffer>();
  const json = (value: unknown): Buffer => Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  const thinking = /thinking/i.test(spec.repoId);

  const weightMap: Record<string, string> = {};
  let totalDataBytes = 0;
  let parameterCount = 0;
  for (let k = 1; k <= shardCount; k++) {
    const name = shardFileName(k, shardCount);
    const tensors = shardTensors({ index: k, count: shardCount, shardBytes });
    for (const t of tensors) {
      weightMap[t.name] = name;
      totalDataBytes += tensorDataBytes(t);
      parameterCount += tensorDataBytes(t) / 2;
    }
    contents.set(name, buildSafetensorsShard({ tensors, seed: `${spec.repoId}@${commitSha}/${name}` }));
  }
  contents.set(
    'model.safetensors.index.json',
    json({ metadata: { total_size: totalDataBytes }, weight_map: weightMap }),
  );
  contents.set('config.json', json(spec.config ?? qwenConfigFor(spec.repoId)));
  contents.set('generation_config.json', json(generationConfig(thinking)));
  contents.set('tokenizer_config.json', json(tokenizerConfig(thinking)));
  const vocab = byteLevelVocab();
  contents.set('tokenizer.json', json(tokenizerJson(vocab)));
  contents.set('vocab.json', Buffer.from(JSON.stringify(vocab)));
  contents.set('merges.txt', Buffer.from('#version: 0.2\n'));
  contents.set('.gitattributes', Buffer.from(GITATTRIBUTES));
  contents.set('LICENSE', Buffer.from('Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n'));
  contents.set('README.md', Buffer.from(readme(spec.repoId)));

  const files = [...contents.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, bytes]) => toRepoFile(path, bytes));
  return { repoId: spec.repoId, commitSha, files, parameterCount };
}

function toRepoFile(path: string, bytes: Buffer): HfRepoFile {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (!isLfsPath(path)) return { path, bytes, sizeBytes: bytes.length, sha256, gitOid: gitBlobOid(bytes), lfs: null };
  const pointer = Buffer.from(
    `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${bytes.length}\n`,
  );
  return {
    path,
    bytes,
    sizeBytes: bytes.length,
    sha256,
    gitOid: gitBlobOid(pointer),
    lfs: { pointerSizeBytes: pointer.length },
  };
}

// The Hub's ETag for a regular file is its git blob id: sha1("blob <size>\0" + content).
function gitBlobOid(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

const HIDDEN = 256;

function shardTensors({
  index,
  count,
  shardBytes,
}: {
  index: number;
  count: number;
  shardBytes: number;
}): SafetensorsTensorSpec[] {
  const layer = index - 1;
  const big = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((p) => `model.layers.${layer}.self_attn.${p}.weight`);
  if (index === 1) big.unshift('model.embed_tokens.weight');
  if (index === count) big.push('lm_head.weight');
  const small = [
    `model.layers.${layer}.input_layernorm.weight`,
    `model.layers.${layer}.post_attention_layernorm.weight`,
  ];
  if (index === count) small.push('model.norm.weight');
  const smallBytes = small.length * HIDDEN * 2;
  const rows = Math.max(1, Math.floor((shardBytes - smallBytes) / (big.length * HIDDEN * 2)));
  return [
    ...big.map((name) => ({ name, shape: [rows, HIDDEN] })),
    ...small.map((name) => ({ name, shape: [HIDDEN] })),
  ].sort((a, b) => (a.name < b.name ? -1 : 1));
}

// Hyperparameters of the real checkpoints (Qwen model cards); the stand-in weights do not match them.
function qwenConfigFor(repoId: string): Record<string, unknown> {
  const common = {
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: 128,
    hidden_act: 'silu',
    initializer_range: 0.02,
    max_position_embeddings: 262144,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    sliding_window: null,
    torch_dtype: 'bfloat16',
    transformers_version: '4.51.0',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: 151936,
  };
  const moe = {
    architectures: ['Qwen3MoeForCausalLM'],
    model_type: 'qwen3_moe',
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    norm_topk_prob: true,
    num_experts: 128,
    num_experts_per_tok: 8,
    output_router_logits: false,
    router_aux_loss_coef: 0.001,
    rope_theta: 10000000,
    tie_word_embeddings: false,
  };
  if (/235B/i.test(repoId)) {
    return {
      ...common,
      ...moe,
      hidden_size: 4096,
      intermediate_size: 12288,
      moe_intermediate_size: 1536,
      num_attention_heads: 64,
      num_key_value_heads: 4,
      num_hidden_layers: 94,
      max_window_layers: 94,
    };
  }
  if (/-A\d+B/i.test(repoId)) {
    return {
      ...common,
      ...moe,
      hidden_size: 2048,
      intermediate_size: 6144,
      moe_intermediate_size: 768,
      num_attention_heads: 32,
      num_key_value_heads: 4,
      num_hidden_layers: 48,
      max_window_layers: 48,
    };
  }
  return {
    ...common,
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    hidden_size: 2560,
    intermediate_size: 9728,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    num_hidden_layers: 36,
    max_window_layers: 36,
    rope_theta: 5000000,
    tie_word_embeddings: true,
  };
}

function generationConfig(thinking: boolean): Record<string, unknown> {
  return {
    bos_token_id: 151643,
    do_sample: true,
    eos_token_id: [151645, 151643],
    pad_token_id: 151643,
    temperature: thinking ? 0.6 : 0.7,
    top_k: 20,
    top_p: thinking ? 0.95 : 0.8,
    transformers_version: '4.51.0',
  };
}

const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>'] as const;
const SPECIAL_TOKEN_IDS = [151643, 151644, 151645, 151667, 151668] as const;

function tokenizerConfig(thinking: boolean): Record<string, unknown> {
  const addedTokensDecoder = Object.fromEntries(
    SPECIAL_TOKENS.map((content, i) => [
      String(SPECIAL_TOKEN_IDS[i]),
      { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: i < 3 },
    ]),
  );
  // A cut-down Qwen3 chat template; the Thinking-2507 template opens the <think> block itself.
  const chatTemplate =
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
    (thinking ? "{{- '<think>\\n' }}" : '') +
    '{%- endif %}';
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: chatTemplate,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 262144,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

// GPT-2 byte-to-unicode table: the 256 single-byte tokens of a byte-level BPE vocabulary.
function byteLevelVocab(): Record<string, number> {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const codeFor = new Map<number, number>(printable.map((b) => [b, b]));
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!codeFor.has(b)) codeFor.set(b, 256 + extra++);
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[String.fromCharCode(codeFor.get(b) ?? b)] = b;
  return vocab;
}

function tokenizerJson(vocab: Record<string, number>): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, i) => ({
      id: SPECIAL_TOKEN_IDS[i],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: i < 3,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

const GITATTRIBUTES = [
  '*.bin filter=lfs diff=lfs merge=lfs -text',
  '*.safetensors filter=lfs diff=lfs merge=lfs -text',
  'tokenizer.json filter=lfs diff=lfs merge=lfs -text',
  '',
].join('\n');

function readme(repoId: string): string {
  return [
    '---',
    'library_name: transformers',
    'license: apache-2.0',
    'pipeline_tag: text-generation',
    '---',
    '',
    `# ${repoId.split('/').pop() ?? repoId} (sandbox stand-in)`,
    '',
    'Generated by sandbox/hf-server. The weights are deterministic filler with the real file layout;',
    'they are not the model.',
    '',
  ].join('\n');
}
