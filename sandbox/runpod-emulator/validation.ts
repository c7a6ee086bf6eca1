// Request-body validation with RunPod v2's error texts: a tiny JSON-schema subset (closed objects
// everywhere, like the spec's unevaluatedProperties:false), then the handler-level cross-field 400s.
import { isPowerOfTwo } from './catalog.js';
import type { CpuFlavorSpec } from './catalog.js';
import { ProblemError, validationFailed } from './problems.js';

export type SchemaMode = 'newest' | 'strict-2.9';

type Node =
  | { t: 'object'; props: Record<string, Node>; required?: string[] }
  | { t: 'map'; values: Node }
  | { t: 'array'; items: Node; maxItems?: number }
  | { t: 'string'; minLength?: number; pattern?: RegExp; enum?: string[] }
  | { t: 'integer'; minimum?: number; maximum?: number }
  | { t: 'boolean' }
  | { t: 'nullable'; inner: Node };

const str = (o: Omit<Extract<Node, { t: 'string' }>, 't'> = {}): Node => ({ t: 'string', ...o });
const int = (o: Omit<Extract<Node, { t: 'integer' }>, 't'> = {}): Node => ({ t: 'integer', ...o });
const bool: Node = { t: 'boolean' };
const arr = (items: Node, maxItems?: number): Node => ({ t: 'array', items, ...(maxItems ? { maxItems } : {}) });
const obj = (props: Record<string, Node>, required: string[] = []): Node => ({ t: 'object', props, required });

const CUDA = /^\d+\.\d+$/;
const PORT = /^\d{1,5}\/(http|tcp)$/;
const SSH_KEY = /^(ssh|ecdsa|sk)-\S+ \S+( .*)?$/;

function mountsNode(): Node {
  return obj({
    persistent: obj({ size: int({ minimum: 10 }), path: str({ minLength: 1 }) }, ['size', 'path']),
    network: arr(obj({ volumeId: str({ minLength: 1 }), path: str({ minLength: 1 }) }, ['volumeId', 'path']), 1),
  });
}

function containerProps(mode: SchemaMode): Record<string, Node> {
  return {
    name: str({ minLength: 1 }),
    image: str({ minLength: 1 }),
    templateId: str({ minLength: 1 }),
    args: str(),
    disk: int({ minimum: 1 }),
    ports: arr(str({ pattern: PORT })),
    env: { t: 'map', values: str() },
    registry: { t: 'nullable', inner: str() },
    mounts: mountsNode(),
    ...(mode === 'newest' ? { entrypoint: arr(str()), cmd: arr(str()) } : {}),
  };
}

function createNode(mode: SchemaMode): Node {
  const gpu: Record<string, Node> = {
    id: str({ minLength: 1 }),
    count: int({ minimum: 1 }),
    allowedCudaVersions: arr(str({ pattern: CUDA })),
    minCudaVersion: str({ pattern: CUDA }),
    ...(mode === 'newest' ? { minRamPerGpu: int({ minimum: 1 }), minVcpuCountPerGpu: int({ minimum: 1 }) } : {}),
  };
  return obj(
    {
      ...containerProps(mode),
      cloud: str({ enum: ['SECURE', 'COMMUNITY'] }),
      gpu: obj(gpu, ['id']),
      cpu: obj({ id: str({ minLength: 1 }), vcpuCount: int({ minimum: 2 }) }, ['id', 'vcpuCount']),
      dataCenterIds: arr(str({ minLength: 1 })),
      startSsh: bool,
      startJupyter: bool,
      globalNetworking: bool,
    },
    ['name'],
  );
}

function patchNode(mode: SchemaMode): Node {
  return obj({ ...containerProps(mode), locked: bool, globalNetworking: bool });
}

const ACTION_NODE = obj({ action: str({ enum: ['start', 'stop', 'restart', 'terminate'] }) }, ['action']);
const SSH_KEYS_NODE = obj({ keys: arr(str({ pattern: SSH_KEY })) }, ['keys']);

/** The create body after schema validation (what the handler may rely on). */
export interface CreateBody {
  name: string;
  image?: string;
  templateId?: string;
  cloud?: 'SECURE' | 'COMMUNITY';
  gpu?: {
    id: string;
    count?: number;
    allowedCudaVersions?: string[];
    minCudaVersion?: string;
    minRamPerGpu?: number;
    minVcpuCountPerGpu?: number;
  };
  cpu?: { id: string; vcpuCount: number };
  dataCenterIds?: string[];
  disk?: number;
  mounts?: Mounts;
  ports?: string[];
  env?: Record<string, string>;
  args?: string;
  entrypoint?: string[];
  cmd?: string[];
  registry?: string | null;
  startSsh?: boolean;
  startJupyter?: boolean;
  globalNetworking?: boolean;
}

export interface Mounts {
  persistent?: { size: number; path: string };
  network?: { volumeId: string; path: string }[];
}

export type PatchBody = Partial<
  Pick<CreateBody, 'name' | 'image' | 'templateId' | 'args' | 'disk' | 'ports' | 'env' | 'registry' | 'mounts'>
> & { entrypoint?: string[]; cmd?: string[]; locked?: boolean; globalNetworking?: boolean };

export type PodActionName = 'start' | 'stop' | 'restart' | 'terminate';

/** @throws ProblemError 422 with `errors[]` in RunPod's `$.path: message` format. */
export function validateCreateBody(body: unknown, mode: SchemaMode): CreateBody {
  const errors = check(createNode(mode), body, '$');
  // `image` is required unless `templateId` is set (if/then in the spec).
  if (isRecord(body) && body.image === undefined && body.templateId === undefined) {
    errors.push("$: missing property 'image'");
  }
  if (errors.length > 0) throw validationFailed(errors);
  return body as CreateBody;
}

export function validatePatchBody(body: unknown, mode: SchemaMode): PatchBody {
  const errors = check(patchNode(mode), body, '$');
  if (errors.length > 0) throw validationFailed(errors);
  return body as PatchBody;
}

export function validateActionBody(body: unknown): PodActionName {
  const errors = check(ACTION_NODE, body, '$');
  if (errors.length > 0) throw validationFailed(errors);
  return (body as { action: PodActionName }).action;
}

export function validateSshKeysBody(body: unknown): string[] {
  const errors = check(SSH_KEYS_NODE, body, '$');
  if (errors.length > 0) throw validationFailed(errors);
  return (body as { keys: string[] }).keys;
}

/**
 * The handler-level rules the schema cannot express; each is a 400 with a prose detail.
 * (Network-volume and template rules need state and live in the state module.)
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

function check(node: Node, value: unknown, at: string): string[] {
  switch (node.t) {
    case 'nullable':
      return value === null ? [] : check(node.inner, value, at);
    case 'boolean':
      return typeof value === 'boolean' ? [] : [typeError(at, 'boolean', value)];
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return [typeError(at, 'integer', value)];
      if (node.minimum !== undefined && value < node.minimum)
        return [`${at}: must be >= ${node.minimum} but found ${value}`];
      if (node.maximum !== undefined && value > node.maximum)
        return [`${at}: must be <= ${node.maximum} but found ${value}`];
      return [];
    }
    case 'string': {
      if (typeof value !== 'string') return [typeError(at, 'string', value)];
      if (node.enum && !node.enum.includes(value)) {
        return [`${at}: value must be one of ${node.enum.map((v) => `'${v}'`).join(', ')}`];
      }
      if (node.minLength !== undefined && value.length < node.minLength) {
        return [`${at}: length must be >= ${node.minLength}, but got ${value.length}`];
      }
      if (node.pattern && !node.pattern.test(value)) {
        return [`${at}: '${value}' does not match pattern '${node.pattern.source}'`];
      }
      return [];
    }
    case 'array': {
      if (!Array.isArray(value)) return [typeError(at, 'array', value)];
      const out: string[] = [];
      if (node.maxItems !== undefined && value.length > node.maxItems) {
        out.push(`${at}: maximum ${node.maxItems} items allowed, but found ${value.length} items`);
      }
      value.forEach((v, i) => out.push(...check(node.items, v, `${at}[${i}]`)));
      return out;
    }
    case 'map': {
      if (!isRecord(value)) return [typeError(at, 'object', value)];
      return Object.entries(value).flatMap(([k, v]) => check(node.values, v, `${at}.${k}`));
    }
    case 'object': {
      if (!isRecord(value)) return [typeError(at, 'object', value)];
      const out: string[] = [];
      const extra = Object.keys(value).filter((k) => !(k in node.props));
      if (extra.length > 0)
        out.push(`${at}: additional properties ${extra.map((k) => `'${k}'`).join(', ')} not allowed`);
      const missing = (node.required ?? []).filter((k) => value[k] === undefined);
      if (missing.length === 1) out.push(`${at}: missing property '${missing[0]}'`);
      if (missing.length > 1) out.push(`${at}: missing properties ${missing.map((k) => `'${k}'`).join(', ')}`);
      for (const [k, child] of Object.entries(node.props)) {
        if (value[k] !== undefined) out.push(...check(child, value[k], `${at}.${k}`));
      }
      return out;
    }
  }
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

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
