// Zod schemas for what RunPod REST v2 sends us, the create body we send, and our own status vocabulary.
// Response schemas are loose on purpose: the v2.9 spec and the newer spec differ, and new fields must not
// break a running study.
import { z } from 'zod';
import { RunPodProtocolError } from './errors.js';

const PortMappingSchema = z.looseObject({
  private: z.number(),
  public: z.number().nullish(),
  type: z.string(),
  ip: z.string().nullish(),
});

const SshEndpointSchema = z.looseObject({
  host: z.string(),
  port: z.number(),
  username: z.string(),
  command: z.string().optional(),
});

export const PodSchema = z.looseObject({
  id: z.string().min(1),
  name: z.string().default(''),
  // Kept a plain string: an unknown status must reach toPhase's explicit unknown branch, not fail parsing.
  status: z.string(),
  image: z.string().nullish(),
  args: z.string().nullish(),
  disk: z.number().nullish(),
  ports: z.array(z.string()).nullish(),
  env: z.record(z.string(), z.string()).nullish(),
  actions: z.array(z.string()).nullish(),
  gpu: z
    .looseObject({
      id: z.string(),
      count: z.number(),
      // Newer spec only.
      vcpuCount: z.number().optional(),
      memory: z.number().optional(),
    })
    .nullish(),
  cpu: z.looseObject({ id: z.string(), vcpuCount: z.number().optional(), memory: z.number().optional() }).nullish(),
  cloud: z.string().nullish(),
  dataCenterId: z.string().nullish(),
  cudaVersion: z.string().nullish(),
  ssh: z
    .looseObject({
      proxy: SshEndpointSchema.nullish(),
      direct: SshEndpointSchema.nullish(),
    })
    .nullish(),
  // The spec says null unless RUNNING, but its own example shows `{}`: every field is optional.
  runtime: z
    .looseObject({
      uptime: z.number().optional(),
      ports: z.array(PortMappingSchema).nullish(),
    })
    .nullish(),
  cost: z.number().nullish(),
  createdAt: z.string().nullish(),
  startedAt: z.string().nullish(),
});
export type Pod = z.infer<typeof PodSchema>;

/** `GET /catalog/gpus/{id}`: only what the plan reads (prices are USD per hour for one GPU). */
export const GpuTypeSchema = z.looseObject({
  id: z.string(),
  memory: z.number().nullish(),
  price: z.looseObject({ secure: z.number().nullish(), community: z.number().nullish() }),
});
export type GpuType = z.infer<typeof GpuTypeSchema>;

export const PaginationSchema = z.looseObject({
  nextCursor: z.string().nullish(),
  hasNextPage: z.boolean().nullish(),
});

// Spec 2.9 has no `pagination`; a missing one means "last page".
export const ListPodsResponseSchema = z.looseObject({
  pods: z.array(PodSchema),
  pagination: PaginationSchema.nullish(),
});
export type ListPodsResponse = z.infer<typeof ListPodsResponseSchema>;

/** RFC 9457 body as RunPod sends it: no `type`, no machine-readable code. */
export const ProblemSchema = z.looseObject({
  title: z.string().optional(),
  status: z.number().optional(),
  detail: z.string().optional(),
  errors: z.array(z.string()).optional(),
});
export type Problem = z.infer<typeof ProblemSchema>;

/** v1's error shape; seeing it means the request reached v1, not v2. */
export const V1ErrorSchema = z.looseObject({ error: z.string() });

/**
 * The create body we send (newest spec). The server rejects unknown fields with 422, so this type is
 * closed: add a field here only after checking the spec. `minRamPerGpu`, `minVcpuCountPerGpu`,
 * `entrypoint` and `cmd` are 422s against a server still on spec 2.9.
 */
export interface CreatePodRequest {
  name: string;
  image?: string;
  templateId?: string;
  /** Omitted means SECURE; there is no ALL. */
  cloud?: 'SECURE' | 'COMMUNITY';
  gpu?: {
    /** Full GPU type id, e.g. `NVIDIA H100 80GB HBM3`; exactly one type, no fallback. */
    id: string;
    count?: number;
    allowedCudaVersions?: string[];
    minCudaVersion?: string;
    /** Host RAM per GPU, GB (newer spec). */
    minRamPerGpu?: number;
    minVcpuCountPerGpu?: number;
  };
  cpu?: { id: string; vcpuCount: number };
  /** Enforced, not a preference: a GPU not offered in these DCs is a no-capacity 400. */
  dataCenterIds?: string[];
  /** Container disk, GB (ephemeral). */
  disk?: number;
  mounts?: {
    persistent?: { size: number; path: string };
    network?: { volumeId: string; path: string }[];
  };
  /** `"<port>/<http|tcp>"`; `ssh.direct` needs `"22/tcp"`. Defaults to none. */
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

/** Our own pod status vocabulary; vendor statuses never leave this folder. */
export type PodPhase = 'starting' | 'running' | 'exited' | 'failed' | 'gone';

/**
 * Maps a RunPod pod status into our vocabulary.
 * @throws RunPodProtocolError for a status the contract does not list.
 */
export function toPhase(status: string): PodPhase {
  switch (status) {
    case 'PROVISIONING':
    case 'STARTING':
      return 'starting';
    case 'RUNNING':
      return 'running';
    case 'EXITED':
      return 'exited';
    case 'ERROR':
      return 'failed';
    case 'TERMINATED':
      return 'gone';
    default:
      throw new RunPodProtocolError(`unknown pod status: ${status}`);
  }
}

/** Where to SSH into a pod. */
export interface PodSshEndpoint {
  host: string;
  port: number;
  username: string;
}

/**
 * The pod's direct SSH endpoint once it is usable, else null. Ready means status RUNNING and either
 * `ssh.direct`, or a `runtime.ports` entry for private 22/tcp with a public ip and port (SkyPilot's
 * fallback). A RUNNING pod can stay portless for ever, so callers must bound their wait.
 */
export function podSshEndpoint(pod: Pod): PodSshEndpoint | null {
  if (pod.status !== 'RUNNING') return null;
  const direct = pod.ssh?.direct;
  if (direct) return { host: direct.host, port: direct.port, username: direct.username };
  const mapped = pod.runtime?.ports?.find((p) => p.type === 'tcp' && p.private === 22 && p.ip && p.public);
  if (mapped?.ip && mapped.public) return { host: mapped.ip, port: mapped.public, username: 'root' };
  return null;
}
