// The REST JSON of a pod (what GET /v2/pods/{id} answers) and the control API's view of its internals.
import { hostKeySha256, podPaths } from './sshd.js';
import { actionsFor } from './model.js';
import type { PodInternals, PodRecord } from './model.js';
import type { SchemaMode } from './validation.js';

/** What rendering depends on besides the pod. */
export interface PodView {
  schemaMode: SchemaMode;
  /** `ssh.direct.username`. */
  sshUser: string;
}

export function renderPod(pod: PodRecord, view: PodView): Record<string, unknown> {
  const newest = view.schemaMode === 'newest';
  const running = pod.status === 'RUNNING';
  const sshPort = running && pod.sshd && pod.published ? pod.sshd.port : null;
  return {
    id: pod.id,
    name: pod.name,
    image: pod.image,
    args: pod.args,
    ...(newest ? { entrypoint: [...pod.entrypoint], cmd: [...pod.cmd] } : {}),
    disk: pod.disk,
    ports: [...pod.ports],
    env: { ...pod.env },
    registry: pod.registry,
    status: pod.status,
    actions: actionsFor(pod.status),
    mounts: structuredClone(pod.mounts),
    ...(pod.gpu
      ? { gpu: newest ? { ...pod.gpu } : { id: pod.gpu.id, count: pod.gpu.count } }
      : { cpu: { ...(pod.cpu as NonNullable<PodRecord['cpu']>) } }),
    cloud: pod.cloud,
    dataCenterId: pod.dataCenterId,
    cudaVersion: pod.cudaVersion,
    ssh: {
      proxy: {
        host: 'ssh.runpod.io',
        port: 22,
        username: pod.proxyUsername,
        command: `ssh ${pod.proxyUsername}@ssh.runpod.io`,
      },
      direct:
        sshPort === null
          ? null
          : {
              host: '127.0.0.1',
              port: sshPort,
              username: view.sshUser,
              command: `ssh ${view.sshUser}@127.0.0.1 -p ${sshPort}`,
            },
    },
    template: null,
    cost: pod.status === 'EXITED' ? 0 : pod.costPerHr,
    locked: pod.locked,
    globalNetworking: { enabled: pod.globalNetworking },
    runtime:
      running && pod.runtimeVisible
        ? {
            uptime: Math.floor((Date.now() - (pod.runningSinceMs ?? Date.now())) / 1000),
            gpus: Array.from({ length: pod.gpu?.count ?? 0 }, () => ({ util: 0, memoryUtil: 0 })),
            cpu: { util: 1 },
            memory: { util: 2 },
            ports: (pod.published ?? []).map((p) => ({ ...p })),
          }
        : null,
    createdAt: new Date(pod.createdAtMs).toISOString(),
    startedAt: pod.startedAtMs === null ? null : new Date(pod.startedAtMs).toISOString(),
  };
}

/** A live pod for `GET /_control/state`: its processes, directories and fault flags. */
export function podInternals(p: PodRecord): PodInternals {
  return {
    id: p.id,
    name: p.name,
    status: p.status,
    dir: p.dir,
    workspaceDir: podPaths(p.dir).workspace,
    sshdPid: p.sshd?.pid ?? null,
    sshdPort: p.sshd?.port ?? null,
    gpuTypeId: p.gpu?.id ?? null,
    gpuCount: p.gpu?.count ?? 0,
    dataCenterId: p.dataCenterId,
    cloud: p.cloud,
    costPerHr: p.costPerHr,
    faults: { ...p.faults, hostileResults: p.hostile !== null },
    hostKeySha256: hostKeySha256(p.dir),
    hostKeySwaps: p.hostKeySwaps,
    createdAt: new Date(p.createdAtMs).toISOString(),
    podApiKey: p.apiKey,
  };
}
