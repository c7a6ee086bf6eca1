// Request-body validation with RunPod v2's error texts: closed zod schemas, their issues as `$.path: message` lines.
import { z } from 'zod';
import { isPowerOfTwo } from './catalog.js';
import type { CpuFlavorSpec } from './catalog.js';
import { ProblemError, validationFailed } from './problems.js';

export type SchemaMode = 'newest' | 'strict-2.9';

// Objects are closed everywhere, like the spec's unevaluatedProperties:false; the handler-level cross-field 400s
// follow the schema check.
const CUDA = /^\d+\.\d+$/;
const PORT = /^\d{1,5}\/(http|tcp)$/;
const SSH_KEY = /^(ssh|ecdsa|sk)-\S+ \S+( .*)?$/;

/** A JSON integer >= `minimum`. Not `z.int()`: that also caps at 2^53, which RunPod's schema does not. */
const integer = (minimum: number) =>
  z
    .number()
    .refine(Number.isInteger, { params: { expected: 'integer' } })
    .min(minimum);

/**
 * An array of at most `max` items. Not `.max()`: zod skips the items of an oversized array, and RunPod reports
 * both the size and every bad item.
 */
const atMost = <T extends z.ZodType>(items: T, max: number) =>
  z.array(items).refine((a) => a.length <= max, { when: (p) => Array.isArray(p.value), params: { maxItems: max } });

const MountsSchema = z.strictObject({
  persistent: z.strictObject({ size: integer(10), path: z.string().min(1) }).optional(),
  network: atMost(z.strictObject({ volumeId: z.string().min(1), path: z.string().min(1) }), 1).optional(),
});

// Key order is the order errors are listed in, as RunPod lists them.
const Name = z.string().min(1);
/** Container fields after `name`, shared by create and patch. */
const containerFields = {
  image: z.string().min(1).optional(),
  templateId: z.string().min(1).optional(),
  args: z.string().optional(),
  disk: integer(1).optional(),
  ports: z.array(z.string().regex(PORT)).optional(),
  env: z.record(z.string(), z.string()).optional(),
  registry: z.string().nullable().optional(),
  mounts: MountsSchema.optional(),
};
const newerContainerFields = { entrypoint: z.array(z.string()).optional(), cmd: z.array(z.string()).optional() };
const gpuFields = {
  id: z.string().min(1),
  count: integer(1).optional(),
  allowedCudaVersions: z.array(z.string().regex(CUDA)).optional(),
  minCudaVersion: z.string().regex(CUDA).optional(),
};
const newerGpuFields = { minRamPerGpu: integer(1).optional(), minVcpuCountPerGpu: integer(1).optional() };
const Cloud = z.enum(['SECURE', 'COMMUNITY']).optional();
/** Create fields after `gpu`. */
const placementFields = {
  cpu: z.strictObject({ id: z.string().min(1), vcpuCount: integer(2) }).optional(),
  dataCenterIds: z.array(z.string().min(1)).optional(),
  startSsh: z.boolean().optional(),
  startJupyter: z.boolean().optional(),
  globalNetworking: z.boolean().optional(),
};
const patchFields = { locked: z.boolean().optional(), globalNetworking: z.boolean().optional() };

const NewestCreateSchema = z.strictObject({
  name: Name,
  ...containerFields,
  ...newerContainerFields,
  cloud: Cloud,
  gpu: z.strictObject({ ...gpuFields, ...newerGpuFields }).optional(),
  ...placementFields,
});
const CREATE_SCHEMAS = {
  newest: NewestCreateSchema,
  'strict-2.9': z.strictObject({
    name: Name,
    ...containerFields,
    cloud: Cloud,
    gpu: z.strictObject(gpuFields).optional(),
    ...placementFields,
  }),
};
const NewestPatchSchema = z.strictObject({
  name: Name.optional(),
  ...containerFields,
  ...newerContainerFields,
  ...patchFields,
});
const PATCH_SCHEMAS = {
  newest: NewestPatchSchema,
  'strict-2.9': z.strictObject({ name: Name.optional(), ...containerFields, ...patchFields }),
};

const PodActionSchema = z.enum(['start', 'stop', 'restart', 'terminate']);
const ActionBodySchema = z.strictObject({ action: PodActionSchema });
const SshKeysBodySchema = z.strictObject({ keys: z.array(z.string().regex(SSH_KEY)) });

/** The create body after schema validation (what the handler may rely on). */
export type CreateBody = z.output<typeof NewestCreateSchema>;
export type Mounts = z.output<typeof MountsSchema>;
export type PatchBody = z.output<typeof NewestPatchSchema>;
export type PodActionName = z.output<typeof PodActionSchema>;

/** @throws ProblemError 422 with `errors[]` in RunPod's `$.path: message` format. */
export function validateCreateBody(body: unknown, mode: SchemaMode): CreateBody {
  const errors = schemaErrors(CREATE_SCHEMAS[mode], body);
  // `image` is required unless `templateId` is set (if/then in the spec).
  if (isRecord(body) && body.image === undefined && body.templateId === undefined) {
    errors.push("$: missing property 'image'");
  }
  if (errors.length > 0) throw validationFailed(errors);
  return body as CreateBody;
}

export function validatePatchBody(body: unknown, mode: SchemaMode): PatchBody {
  return validated(PATCH_SCHEMAS[mode], body);
}

export function validateActionBody(body: unknown): PodActionName {
  return validated(ActionBodySchema, body).action;
}

export function validateSshKeysBody(body: unknown): string[] {
  return validated(SshKeysBodySchema, body).keys;
}

/**
 * The handler-level rules the schema cannot express; each is a 400 with a prose detail.
 * (Network-volume and template rules need state and live in create-pod.ts.)
 */
export function checkCreateCrossFields(body: CreateBody, cpuFlavors: Map<string, CpuFlavorSpec>): void {
  // UNCONFIRMED whether gpu+cpu is a 400 or a 422; the spec says "enforced at the handler layer".
  if ((body.gpu === undefined) === (body.cpu === undefined)) {
    throw new ProblemError(400, 'exactly one of gpu or cpu must be specified');
  }
  if (body.mounts?.persistent && body.mounts.network) {
    throw new ProblemError(400, 'mounts.persistent and mounts.network cannot be used together');
  }
  if (body.cpu && body.mounts?.persistent) {
    throw new ProblemError(400, 'mounts.persistent is not supported on CPU pods');
  }
  if (body.gpu?.allowedCudaVersions?.length && body.gpu.minCudaVersion !== undefined) {
    throw new ProblemError(400, 'gpu.allowedCudaVersions and gpu.minCudaVersion cannot be used together');
  }
  if (body.cpu) {
    const flavor = cpuFlavors.get(body.cpu.id);
    const n = body.cpu.vcpuCount;
    if (!isPowerOfTwo(n)) throw new ProblemError(400, `cpu.vcpuCount must be a power of two, got ${n}`);
    if (flavor && (n < flavor.vcpu.min || n > flavor.vcpu.max)) {
      throw new ProblemError(
        400,
        `cpu.vcpuCount ${n} is outside the range ${flavor.vcpu.min}-${flavor.vcpu.max} of flavor ${flavor.id}`,
      );
    }
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The body itself once `schema` accepts it. Not zod's copy: that lists object keys in schema order, and the pod
 * keeps (and renders) what the client sent.
 */
function validated<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const errors = schemaErrors(schema, body);
  if (errors.length > 0) throw validationFailed(errors);
  return body as z.output<T>;
}

function schemaErrors(schema: z.ZodType, body: unknown): string[] {
  const r = schema.safeParse(body);
  return r.success ? [] : runpodErrors(r.error.issues, body);
}

type Issue = z.core.$ZodIssue;

interface IssueNode {
  own: Issue[];
  /** In the order zod met them: schema order for object keys, index order for items, input order for maps. */
  children: Map<PropertyKey, IssueNode>;
}

/**
 * RunPod's lines for zod's issues, in RunPod's order: per object its unknown keys, then its missing keys, then
 * each property in schema order; per array its size, then each item; per value only its first failure.
 */
function runpodErrors(issues: readonly Issue[], body: unknown): string[] {
  const root: IssueNode = { own: [], children: new Map() };
  for (const issue of issues) {
    let node = root;
    for (const key of issue.path) {
      let child = node.children.get(key);
      if (!child) {
        child = { own: [], children: new Map() };
        node.children.set(key, child);
      }
      node = child;
    }
    node.own.push(issue);
  }
  return describe(root, body, '$');
}

function describe(node: IssueNode, value: unknown, at: string): string[] {
  const structural = (i: Issue): boolean => i.code === 'unrecognized_keys' || maxItemsOf(i) !== undefined;
  const failure = node.own.find((i) => !structural(i));
  if (failure) return [valueError(failure, value, at)];
  const out: string[] = [];
  for (const issue of node.own) {
    if (issue.code === 'unrecognized_keys') {
      out.push(`${at}: additional properties ${issue.keys.map((k) => `'${k}'`).join(', ')} not allowed`);
    }
    const maxItems = maxItemsOf(issue);
    if (maxItems !== undefined && Array.isArray(value)) {
      out.push(`${at}: maximum ${maxItems} items allowed, but found ${value.length} items`);
    }
  }
  const present: [PropertyKey, IssueNode][] = [];
  const missing: string[] = [];
  for (const [key, child] of node.children) {
    if (childOf(value, key) === undefined) missing.push(String(key));
    else present.push([key, child]);
  }
  if (missing.length === 1) out.push(`${at}: missing property '${missing[0]}'`);
  if (missing.length > 1) out.push(`${at}: missing properties ${missing.map((k) => `'${k}'`).join(', ')}`);
  for (const [key, child] of present) {
    const next = typeof key === 'number' ? `${at}[${key}]` : `${at}.${String(key)}`;
    out.push(...describe(child, childOf(value, key), next));
  }
  return out;
}

function valueError(issue: Issue, value: unknown, at: string): string {
  switch (issue.code) {
    case 'invalid_type':
      return typeError(at, TYPE_NAMES[issue.expected] ?? issue.expected, value);
    case 'custom':
      return typeError(at, String(issue.params?.expected ?? 'valid'), value);
    case 'invalid_value':
      // An enum: a non-string fails as a string would.
      if (typeof value !== 'string') return typeError(at, 'string', value);
      return `${at}: value must be one of ${issue.values.map((v) => `'${String(v)}'`).join(', ')}`;
    case 'too_small':
      if (typeof value === 'string') return `${at}: length must be >= ${issue.minimum}, but got ${value.length}`;
      return `${at}: must be >= ${issue.minimum} but found ${String(value)}`;
    case 'invalid_format':
      if (issue.format === 'regex' && 'pattern' in issue && typeof issue.pattern === 'string') {
        // zod gives the pattern as `/source/flags`.
        const source = issue.pattern.slice(1, issue.pattern.lastIndexOf('/'));
        return `${at}: '${String(value)}' does not match pattern '${source}'`;
      }
      return `${at}: ${issue.message}`;
    default:
      return `${at}: ${issue.message}`;
  }
}

/** zod's type names where RunPod's differ (every number in these schemas is an integer). */
const TYPE_NAMES: Record<string, string> = { number: 'integer', record: 'object' };

function maxItemsOf(issue: Issue): number | undefined {
  if (issue.code !== 'custom') return undefined;
  const max: unknown = issue.params?.maxItems;
  return typeof max === 'number' ? max : undefined;
}

function childOf(value: unknown, key: PropertyKey): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
}

function typeError(at: string, expected: string, value: unknown): string {
  return `${at}: expected ${expected}, but got ${jsonType(value)}`;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}
