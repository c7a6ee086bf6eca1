// Shared types of the emulator state: its options, the pod record every module works on, the control-API views.
import type { Cloud, CapacityModel } from './catalog.js';
import type { HostileResultsSettings } from './hostile.js';
import type { SshdHandle, SshdManager } from './sshd.js';
import type { Mounts, SchemaMode } from './validation.js';

export type PodStatus = 'PROVISIONING' | 'STARTING' | 'RUNNING' | 'EXITED' | 'ERROR' | 'TERMINATED';
/** 'spec': PROVISIONING -> STARTING -> RUNNING. 'observed': RUNNING from creation (what production showed). */
export type StatusMode = 'spec' | 'observed';

/** Each delay runs after the previous step. */
export interface TimelineDelays {
  /** PROVISIONING -> STARTING ('spec' mode). */
  provisioningDelayMs: number;
  /** STARTING -> RUNNING ('spec' mode, and on start after stop). */
  startingDelayMs: number;
  /** RUNNING -> `runtime` non-null (image pulled, container up). */
  imagePullDelayMs: number;
  /** runtime up -> sshd started and ports published (`ssh.direct` set). The port refuses until then. */
  portDelayMs: number;
}

export const DEFAULT_TIMELINE: TimelineDelays = {
  provisioningDelayMs: 300,
  startingDelayMs: 300,
  imagePullDelayMs: 500,
  portDelayMs: 500,
};

export interface TemplateSpec {
  image?: string;
  env?: Record<string, string>;
  ports?: string[];
  args?: string;
  disk?: number;
  /** A serverless template cannot back a pod (422). */
  serverless?: boolean;
}

export interface NetworkVolumeSpec {
  id: string;
  dataCenterId: string;
}

export interface EmulatorStateOptions {
  dataDir: string;
  schemaMode: SchemaMode;
  statusMode: StatusMode;
  timeline: TimelineDelays;
  /** Whether PROVISIONING/STARTING accrue cost (UNCONFIRMED upstream). */
  billProvisioning: boolean;
  /** Prepended to PATH in every SSH session. */
  podPathPrefix: string;
  /** Extra session environment for every pod (like the image's ENV; the create body's env wins). */
  podEnv: Record<string, string>;
  templates: Record<string, TemplateSpec>;
  networkVolumes: NetworkVolumeSpec[];
  accountSshKeys: string[];
  /** A DELETE of an already-terminated pod: 404 (spec) or 204. */
  secondDelete: 'not-found' | 'no-content';
  /** Container disk when neither body nor template sets one (UNCONFIRMED upstream). */
  defaultDiskGb: number;
  /** `ssh.direct.username`: the OS user the emulator (and so sshd) runs as. */
  sshUser: string;
  seed: number | undefined;
  catalog: CapacityModel;
  sshd: SshdManager;
  sshKeygenPath: string;
  log: (line: string) => void;
}

export interface PortMapping {
  private: number;
  public: number | null;
  type: string;
  ip: string | null;
}

export interface LogLine {
  ts: string;
  source: 'system' | 'container';
  line: string;
}

export interface PodRecord {
  seq: number;
  id: string;
  name: string;
  image: string;
  args: string;
  entrypoint: string[];
  cmd: string[];
  disk: number;
  ports: string[];
  env: Record<string, string>;
  registry: string | null;
  mounts: Mounts;
  locked: boolean;
  globalNetworking: boolean;
  cloud: Cloud;
  dataCenterId: string;
  cudaVersion: string | null;
  gpu: { id: string; count: number; vcpuCount: number; memory: number } | null;
  cpu: { id: string; vcpuCount: number; memory: number } | null;
  /** Capacity cell holding the GPUs; the pod is pinned to it across stop/start. */
  cellKey: string | null;
  holdsGpus: boolean;
  costPerHr: number;
  proxyUsername: string;
  createdAtMs: number;
  startedAtMs: number | null;
  status: PodStatus;
  runningSinceMs: number | null;
  runtimeVisible: boolean;
  published: PortMapping[] | null;
  sshd: SshdHandle | null;
  dir: string;
  authorizedKeys: string;
  /** sftpBroken: the container's SFTP server is broken (until the container restarts: start after stop, restart). */
  faults: { noPorts: boolean; sshdRefuses: boolean; sftpBroken: boolean };
  /** Left out of `GET /pods` until this time (epoch ms; the 'list-lag' fault). 0: listed from creation. */
  unlistedUntilMs: number;
  /** Set by the 'hostile-results' fault: the pod's PATH starts with the planting shim. */
  hostile: HostileResultsSettings | null;
  /** Host key swaps done by the 'host-key-swap' fault. */
  hostKeySwaps: number;
  /** Timeline timers, cancelled by any interruption (stop, restart, error, delete). */
  timers: Set<NodeJS.Timeout>;
  /** Fault timers (error/vanish after N ms), cancelled only on delete. */
  faultTimers: Set<NodeJS.Timeout>;
  /** Bumped on every interruption so late timeline steps and sshd starts know they are stale. */
  generation: number;
  logs: LogLine[];
  /**
   * The pod's own API key, in its sessions as RUNPOD_API_KEY: accepted only for reading this pod and stopping it.
   * RunPod documents a RUNPOD_API_KEY "limited in scope to only the pod"; what REST v2 lets it do is UNCONFIRMED.
   */
  apiKey: string;
}

export interface PodInternals {
  id: string;
  name: string;
  status: PodStatus;
  dir: string;
  workspaceDir: string;
  sshdPid: number | null;
  sshdPort: number | null;
  gpuTypeId: string | null;
  gpuCount: number;
  dataCenterId: string;
  cloud: Cloud;
  costPerHr: number;
  faults: { noPorts: boolean; sshdRefuses: boolean; sftpBroken: boolean; hostileResults: boolean };
  /** The fingerprint of the host key the pod's sshd presents (`SHA256:...`, as `ssh-keygen -lf` prints it). */
  hostKeySha256: string | null;
  /** How often the 'host-key-swap' fault replaced the pod's host key (and restarted its sshd with it). */
  hostKeySwaps: number;
  createdAt: string;
  /** The pod-scoped key its sessions see as RUNPOD_API_KEY. */
  podApiKey: string;
}

export interface CallRecord {
  at: string;
  method: string;
  path: string;
  status: number;
}

/** Legal actions per status, as the spec describes them (not as its 201 example shows). */
export function actionsFor(status: PodStatus): ('start' | 'stop' | 'restart' | 'terminate')[] {
  switch (status) {
    case 'RUNNING':
      return ['stop', 'restart', 'terminate'];
    case 'EXITED':
    case 'ERROR':
      return ['start', 'terminate'];
    case 'PROVISIONING':
    case 'STARTING':
      return ['stop', 'terminate'];
    case 'TERMINATED':
      return [];
  }
}
