// Schemas of the control API (`/_control/*` and the in-process methods): capacity, faults, rate limits.
import { z } from 'zod';

const CloudSchema = z.enum(['SECURE', 'COMMUNITY']);

export const CapacityCellSchema = z.strictObject({
  gpuTypeId: z.string().min(1),
  dataCenterId: z.string().min(1),
  cloud: CloudSchema.default('SECURE'),
  freeGpus: z.number().int().min(0),
  cudaVersion: z.string().nullable().optional(),
  ramPerGpuGb: z.number().int().positive().optional(),
  vcpuPerGpu: z.number().int().positive().optional(),
});

/**
 * `POST /_control/capacity`: set the free GPUs of cells; `replace` drops every cell not listed. With `afterMs`, the
 * change happens that long from now (capacity that appears or disappears later, e.g. during a crunch).
 */
export const CapacityUpdateSchema = z.strictObject({
  cells: z.array(CapacityCellSchema),
  replace: z.boolean().default(false),
  afterMs: z.number().int().min(0).default(0),
});
export type CapacityUpdate = z.input<typeof CapacityUpdateSchema>;

export const RateLimitWindowSchema = z.enum(['minute', 'hour', 'day']);

const RequestMatch = {
  /** Only requests with this method (e.g. 'POST'). */
  method: z.string().optional(),
  /** Only requests whose path below /v2 starts with this (e.g. '/pods'). */
  pathPrefix: z.string().optional(),
};

// ssh-drop: open SSH connections are cut (sshd keeps listening, detached processes keep running).
// host-key-swap: once the pod has accepted `afterLogins` SSH logins, its sshd restarts in place with a new host key
// (another machine at the pod's address); open connections and detached processes keep running.
// hostile-results: a hostile pod. Each harness run folder gets, as the run starts, a file whose name holds a newline
// and `..`, a symlink `leak.json` to `linkTarget`, and a sparse `big.bin` of `oversizeBytes` (sandbox/runpod-emulator/
// hostile.ts).
// sftp-broken: the pod's sshd refuses the SFTP subsystem (restarted in place without it) while SSH exec keeps working;
// it lasts until the container restarts (action start after a stop, restart, or a PATCH that restarts the pod).
// list-lag: the pod is left out of `GET /pods` for `afterMs` (from its creation, or from now for an existing pod), as
// an eventually consistent list would; `GET /pods/{id}` finds it at once.
export const PodFaultEffectSchema = z.enum([
  'list-lag',
  'no-ports',
  'sshd-refuses',
  'error',
  'vanish',
  'ssh-drop',
  'host-key-swap',
  'hostile-results',
  'sftp-broken',
]);
export type PodFaultEffect = z.infer<typeof PodFaultEffectSchema>;

export const FaultSchema = z.discriminatedUnion('type', [
  // The pod is really created (and bills), but the response is a 5xx.
  z.strictObject({
    type: z.literal('create-5xx'),
    status: z.number().int().min(500).max(599).default(500),
    count: z.number().int().min(1).default(1),
  }),
  // The next `requests` authenticated /v2 requests (matching the filter) answer `status`. A 429 says the minute
  // window is exhausted (`Retry-After` and its `RateLimit` item both `retryAfterS`); `exhausted` lists other windows
  // its `RateLimit` header reports at r=0, with their own reset (Retry-After covers only the exceeded window).
  z.strictObject({
    type: z.literal('storm'),
    status: z
      .number()
      .int()
      .refine((s) => s === 429 || (s >= 500 && s <= 599), 'status must be 429 or 5xx'),
    requests: z.number().int().min(1),
    retryAfterS: z.number().int().min(0).default(1),
    exhausted: z.array(z.strictObject({ window: RateLimitWindowSchema, resetS: z.number().int().min(0) })).optional(),
    ...RequestMatch,
  }),
  // Delays the next `requests` matching requests before they are handled (client timeouts).
  z.strictObject({
    type: z.literal('latency'),
    delayMs: z.number().int().min(0),
    requests: z.number().int().min(1).default(1),
    ...RequestMatch,
  }),
  // Creates and starts answer 402 while enabled.
  z.strictObject({ type: z.literal('insufficient-balance'), enabled: z.boolean().default(true) }),
  // Every request with this API key answers 403 "access denied" while enabled.
  z.strictObject({ type: z.literal('forbidden-key'), apiKey: z.string().min(1), enabled: z.boolean().default(true) }),
  // Creates of this GPU type answer 403 "Your account cannot access the requested pool".
  z.strictObject({
    type: z.literal('restricted-pool'),
    gpuTypeId: z.string().min(1),
    enabled: z.boolean().default(true),
  }),
  // Creates (of this GPU type, or of any) answer 400 with `detail`: neither a capacity text nor a field error, like a
  // rule of RunPod's the request breaks. `enabled: false` lifts it again.
  z.strictObject({
    type: z.literal('create-400'),
    gpuTypeId: z.string().min(1).optional(),
    detail: z.string().min(1).default('request could not be processed'),
    enabled: z.boolean().default(true),
  }),
  // The catalog reports HIGH everywhere while creates still follow the real capacity.
  z.strictObject({ type: z.literal('stale-catalog'), enabled: z.boolean().default(true) }),
  // A pod misbehaves: with podId, that existing pod; otherwise the next `count` created pods (optionally
  // only those whose name starts with namePrefix). `afterMs` delays 'error' and 'vanish' from now/creation.
  z.strictObject({
    type: z.literal('pod'),
    effect: PodFaultEffectSchema,
    podId: z.string().optional(),
    namePrefix: z.string().optional(),
    count: z.number().int().min(1).default(1),
    afterMs: z.number().int().min(0).default(0),
    /** host-key-swap: logins the pod accepts with its first key (1: the readiness check's). */
    afterLogins: z.number().int().min(0).default(1),
    /** hostile-results: what the planted symlink points to (a file of the worker's machine, in the sandbox). */
    linkTarget: z.string().min(1).default('/etc/passwd'),
    /** hostile-results: apparent size of the planted sparse file, in bytes (default TRANSFER_MAX_FILE_BYTES is 2 GiB). */
    oversizeBytes: z
      .number()
      .int()
      .positive()
      .default(3 * 2 ** 30),
  }),
  // Extra SSH-session environment for pods created from now on (e.g. simulated-vLLM knobs such as
  // VLLM_SIM_FAULT); an empty value removes the variable.
  z.strictObject({
    type: z.literal('pod-env'),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()),
  }),
  z.strictObject({ type: z.literal('clear') }),
]);
export type Fault = z.input<typeof FaultSchema>;
export type ParsedFault = z.output<typeof FaultSchema>;

/** `POST /_control/faults` takes one fault or `{ faults: [...] }`. */
export const FaultsBodySchema = z.union([FaultSchema, z.strictObject({ faults: z.array(FaultSchema) })]);

/** `POST /_control/rate-limits`. */
export const RateLimitsUpdateSchema = z.strictObject({
  minute: z.number().int().min(0).optional(),
  hour: z.number().int().min(0).optional(),
  day: z.number().int().min(0).optional(),
  reset: z.boolean().default(false),
});
export type RateLimitsUpdate = z.input<typeof RateLimitsUpdateSchema>;
