// Named fault scenarios for the sandbox: tests apply them in-process, users with `npm run scenario -- <name>`
// against the running daemon (then `npm run start-workflow -- <phase> --sandbox`).
import { DEFAULT_SHARD_COUNT, shardFileName, type HfFault, type HfServer } from './hf-server/index.js';
import type { CapacityUpdate, Fault, RunPodEmulator } from './runpod-emulator/index.js';

/** What a scenario may change; implemented in-process (tests) and over the daemon's HTTP control API (CLI). */
export interface SandboxControl {
  setCapacity(update: CapacityUpdate): Promise<void>;
  injectRunPodFault(fault: Fault): Promise<void>;
  clearRunPodFaults(): Promise<void>;
  setHfFaults(faults: HfFault[]): Promise<void>;
}

export interface Scenario {
  name: string;
  description: string;
  apply(control: SandboxControl): Promise<void>;
}

const H100 = 'NVIDIA H100 80GB HBM3';
const A100_SXM = 'NVIDIA A100-SXM4-80GB';
/** The project's pod name prefix (src/shared/constants.ts POD_NAME_PREFIX). */
const POD_PREFIX = 'gpustudy';
/** How long the capacity crunch lasts before the last candidate gets GPUs. */
export const CAPACITY_CRUNCH_DELAY_MS = 15_000;

/** The stand-in repos' first and last weight shards (every default repo has DEFAULT_SHARD_COUNT). */
const FIRST_SHARD = shardFileName(1, DEFAULT_SHARD_COUNT);
const LAST_SHARD = shardFileName(DEFAULT_SHARD_COUNT, DEFAULT_SHARD_COUNT);
/** crash-after counts completed chat requests, and startVllm's warm-up request is the first of them. */
export const VLLM_CRASH_AFTER_REQUESTS = 3;
/** When the ssh-drop scenario cuts the next pod's SSH connections, in ms after the pod's creation. */
export const SSH_DROP_AT_MS = Array.from({ length: 24 }, (_, i) => 12_000 + i * 5_000);

const scenarios: Scenario[] = [
  {
    name: 'none',
    description: 'no faults: clears every injected fault',
    async apply(c) {
      await c.clearRunPodFaults();
      await c.setHfFaults([]);
    },
  },
  // The RunPod scenarios below are written against the sandbox study's phase2a candidates (studies/rq1.yaml):
  // #0 H100 in US DCs, #1 H100 in EU DCs, #2 A100 SXM in any DC; the sandbox holds H100s in US-KS-2 and EU-RO-1 and
  // A100 SXMs in US-TX-3.
  {
    name: 'capacity-crunch',
    description:
      `every phase2a GPU candidate is out of capacity; ${CAPACITY_CRUNCH_DELAY_MS / 1000} s later the last one ` +
      '(A100 SXM, US-TX-3) gets 2 GPUs: the reserve step backs off, then falls back to candidate #2',
    async apply(c) {
      await c.setCapacity({
        cells: [
          { gpuTypeId: H100, dataCenterId: 'US-KS-2', freeGpus: 0 },
          { gpuTypeId: H100, dataCenterId: 'EU-RO-1', freeGpus: 0 },
          { gpuTypeId: A100_SXM, dataCenterId: 'US-TX-3', freeGpus: 0 },
        ],
      });
      await c.setCapacity({
        cells: [{ gpuTypeId: A100_SXM, dataCenterId: 'US-TX-3', freeGpus: 2 }],
        afterMs: CAPACITY_CRUNCH_DELAY_MS,
      });
    },
  },
  {
    name: 'api-storm',
    description:
      'RunPod API trouble: pod lists answer 503 twice, creates answer 429 (Retry-After 1 s) three times, then a ' +
      'create succeeds but answers 502: the reserve step retries, waits, and adopts the pod by name (no duplicate)',
    async apply(c) {
      await c.injectRunPodFault({ type: 'storm', status: 503, requests: 2, method: 'GET', pathPrefix: '/pods' });
      await c.injectRunPodFault({
        type: 'storm',
        status: 429,
        requests: 3,
        retryAfterS: 1,
        method: 'POST',
        pathPrefix: '/pods',
      });
      await c.injectRunPodFault({ type: 'create-5xx', status: 502, count: 1 });
    },
  },
  {
    name: 'pod-vanishes',
    description:
      'the next pod vanishes (404) 4 s after its create, while it is starting: it counts as not ready, and the ' +
      'next candidate gets a round of its own',
    async apply(c) {
      await c.injectRunPodFault({
        type: 'pod',
        effect: 'vanish',
        namePrefix: `${POD_PREFIX}--`,
        count: 1,
        afterMs: 4_000,
      });
    },
  },
  // Pod-side scenarios: each ends with correct results or a clear non-retryable failure, and the pod terminated.
  {
    name: 'xet-stall',
    description:
      `the first GET of ${FIRST_SHARD} sends 512 KiB, then hangs. The sandbox Hub never speaks Xet (plain HTTP ` +
      'only), so this is a stalled HTTP transfer standing in for a stalled Xet one: the download watchdog sees no ' +
      'byte written for the stall timeout (study download.stallTimeoutMs, else DOWNLOAD_STALL_TIMEOUT_MS), kills ' +
      '`hf download` and resumes into the same directory with HF_HUB_DISABLE_XET=1, keeping the files already done',
    async apply(c) {
      await c.setHfFaults([{ kind: 'stall', file: FIRST_SHARD, afterBytes: 512 * 1024, count: 1 }]);
    },
  },
  {
    name: 'corrupt-shard',
    description:
      `the first GET of ${LAST_SHARD} serves only its first 700 KiB as if that were the whole file, so ` +
      "`hf download` accepts a truncated shard; verification finds its size differs from the Hub's, deletes it, " +
      'and the next pass fetches it whole before `.complete` is written (a corrupt file never passes)',
    async apply(c) {
      await c.setHfFaults([
        { kind: 'truncate', mode: 'short-file', file: LAST_SHARD, keepBytes: 700 * 1024, count: 1 },
      ]);
    },
  },
  {
    name: 'vllm-oom',
    description:
      'vLLM runs out of CUDA memory at startup on every pod created from now on (until `none`): the start is ' +
      'classified as "does not fit" and the session fails for good (ModelDoesNotFitError, with vLLM\'s numbers and ' +
      'a suggestion), without retrying; the pod is terminated',
    async apply(c) {
      await c.injectRunPodFault({ type: 'pod-env', env: { VLLM_SIM_FAULT: 'oom' } });
    },
  },
  {
    name: 'vllm-crash-mid-run',
    description:
      `the first vLLM on each pod created from now on (until \`none\`) dies after ${VLLM_CRASH_AFTER_REQUESTS} ` +
      'completed requests (the warm-up counts), in the middle of the first run: runInference notices the server is ' +
      'gone, the workflow restarts vLLM and, per harness.interruptionPolicy, reruns the prompt strategy from scratch ' +
      'under a new run id (restart, the default) or continues from its predictions (resume; energy marked not ' +
      'comparable in the manifest)',
    async apply(c) {
      await c.injectRunPodFault({
        type: 'pod-env',
        env: { VLLM_SIM_FAULT: `crash-after:${VLLM_CRASH_AFTER_REQUESTS}:once` },
      });
    },
  },
  {
    name: 'ssh-drop',
    description:
      `the next pod's open SSH connections are cut every 5 s from ${(SSH_DROP_AT_MS[0] ?? 0) / 1000} s to ` +
      `${(SSH_DROP_AT_MS[SSH_DROP_AT_MS.length - 1] ?? 0) / 1000} s after its creation (its detached work keeps ` +
      'running), and the simulated vLLM of pods created from now on (until `none`) answers at 60 tokens/s so ' +
      'inference spans several cuts: every step reconnects and re-attaches to its pid-file-tracked process ' +
      '(download, vLLM, harness) instead of starting it twice',
    async apply(c) {
      await c.injectRunPodFault({ type: 'pod-env', env: { VLLM_SIM_TOKENS_PER_S: '60' } });
      for (const afterMs of SSH_DROP_AT_MS) {
        await c.injectRunPodFault({
          type: 'pod',
          effect: 'ssh-drop',
          namePrefix: `${POD_PREFIX}--`,
          count: 1,
          afterMs,
        });
      }
    },
  },
  // Trust boundaries: the pod is untrusted input. Both end in a clear non-retryable failure and the pod terminated.
  {
    name: 'host-key-swap',
    description:
      "right after the next pod's readiness check logs in, its sshd restarts with a new host key (another machine at " +
      "the pod's address): the next SSH connection of the session fails with HostKeyMismatchError naming both " +
      'fingerprints, nothing reconnects or retries, and the pod is terminated',
    async apply(c) {
      await c.injectRunPodFault({
        type: 'pod',
        effect: 'host-key-swap',
        namePrefix: `${POD_PREFIX}--`,
        count: 1,
        afterLogins: 1,
      });
    },
  },
  {
    name: 'hostile-pod',
    description:
      "the next pod is hostile: each harness run folder gets a file whose name holds a newline and '..', a symlink " +
      'leak.json to /etc/passwd and a sparse 3 GiB big.bin: transferResults refuses them (unsafe name, symlink, ' +
      'over the default TRANSFER_MAX_FILE_BYTES of 2 GiB) without writing anything outside the run folder, and the session fails',
    async apply(c) {
      await c.injectRunPodFault({ type: 'pod', effect: 'hostile-results', namePrefix: `${POD_PREFIX}--`, count: 1 });
    },
  },
  {
    name: 'pods-never-ready',
    description:
      'the next pod runs but never gets a public SSH port: at the readiness deadline (podReadyTimeoutMs) it is ' +
      'terminated and the next candidate tried',
    async apply(c) {
      await c.injectRunPodFault({ type: 'pod', effect: 'no-ports', namePrefix: `${POD_PREFIX}--`, count: 1 });
    },
  },
];

export const SCENARIOS: ReadonlyMap<string, Scenario> = new Map(scenarios.map((s) => [s.name, s]));

export function scenarioByName(name: string): Scenario {
  const s = SCENARIOS.get(name);
  if (!s) throw new Error(`unknown scenario ${name}; known: ${[...SCENARIOS.keys()].join(', ')}`);
  return s;
}

/** The control in-process, for tests that start the servers themselves. */
export function inProcessSandboxControl(servers: { runpod: RunPodEmulator; hf: HfServer }): SandboxControl {
  return {
    setCapacity: (update) => Promise.resolve(servers.runpod.setCapacity(update)),
    injectRunPodFault: (fault) => Promise.resolve(servers.runpod.injectFault(fault)),
    clearRunPodFaults: () => Promise.resolve(servers.runpod.clearFaults()),
    setHfFaults: (faults) => Promise.resolve(servers.hf.setFaults(faults)),
  };
}

/** The control over HTTP, for a daemon running in another process. */
export function httpSandboxControl(urls: { runpodControlUrl: string; hfUrl: string }): SandboxControl {
  const post = async (url: string, body: unknown, method = 'POST') => {
    const res = await fetch(url, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  };
  return {
    setCapacity: (update) => post(`${urls.runpodControlUrl}/capacity`, update),
    injectRunPodFault: (fault) => post(`${urls.runpodControlUrl}/faults`, fault),
    clearRunPodFaults: () => post(`${urls.runpodControlUrl}/faults`, {}, 'DELETE'),
    setHfFaults: (faults) => post(`${urls.hfUrl}/_control/faults`, { faults }),
  };
}
