// Where a phase runs: RunPod (ordered GPU candidates, reservation backoff, the pod's watchdog) or the team's own
// server over SSH (with its GPU lock).
import { z } from 'zod';
import { WATCHDOG_TOUCH_INTERVAL_MS } from '../shared/constants.js';
import { port, positiveInt, workspacePath } from './schema-fields.js';

export const GpuCandidateSchema = z
  .object({
    /** RunPod GPU type id, exact spelling (e.g. `NVIDIA H100 80GB HBM3`). */
    gpuTypeId: z.string().min(1),
    gpuCount: positiveInt.default(1),
    /** Data centers to allow for this candidate; empty lets RunPod choose. */
    dataCenterIds: z.array(z.string().min(1)).default([]),
    cloud: z.enum(['SECURE', 'COMMUNITY']).default('SECURE'),
  })
  .strict();

/**
 * How long and how often a session keeps trying to get a usable pod. When every candidate is out of capacity the
 * reserve activity fails retryably and Temporal retries it with this backoff; the deadline covers every reserve
 * attempt and every readiness round of the session.
 */
export const ReservationSettingsSchema = z
  .object({
    /** First backoff after an attempt in which no candidate had capacity. */
    initialIntervalMs: positiveInt.default(30_000),
    /** Backoff cap (the interval doubles up to this). */
    maximumIntervalMs: positiveInt.default(10 * 60_000),
    /** From the first reserve attempt; past it the session fails and says what each candidate answered. */
    deadlineMs: positiveInt.default(6 * 3_600_000),
    /**
     * Pods that may fail readiness (no SSH port, sshd refusing, ERROR, vanished) before the session gives up: each
     * is terminated and the next candidate tried. Bounds what a broken image or key can cost.
     */
    maxUnreadyPods: positiveInt.default(3),
    /**
     * Pods that may be lost mid-session (vanished, exited, unreachable over SSH) and replaced by a new pod of the same
     * GPU type before the session fails. Runs already brought home are kept; both pods are paid for.
     */
    maxPodReplacements: z.number().int().nonnegative().default(2),
  })
  .strict()
  .refine((r) => r.initialIntervalMs <= r.maximumIntervalMs, {
    path: ['maximumIntervalMs'],
    message: 'must be at least initialIntervalMs',
  });

/**
 * The pod-side dead-man's switch: when the orchestrator has not touched `<ws>/heartbeat` for `staleAfterMs`, the pod
 * kills its work (vLLM, harness, download) and stops itself.
 */
export const WatchdogSettingsSchema = z
  .object({
    enabled: z.boolean().default(true),
    /**
     * Longer than any gap between the activities' touches (installs run before the watchdog starts; a long step
     * touches at least every WATCHDOG_TOUCH_INTERVAL_MS); the default also covers an activity's retry backoff.
     */
    staleAfterMs: positiveInt
      .gt(
        WATCHDOG_TOUCH_INTERVAL_MS,
        `must be longer than ${WATCHDOG_TOUCH_INTERVAL_MS} ms (the longest gap between the worker's touches)`,
      )
      .default(60 * 60_000),
    checkIntervalMs: positiveInt.default(30_000),
    /**
     * How the pod stops itself: 'pod-key' uses the pod's own RUNPOD_API_KEY (scoped to that pod); 'account-key-opt-in'
     * copies the worker's full API key onto the pod (only when you accept that risk); 'none' only ends the work.
     */
    selfStop: z.enum(['pod-key', 'account-key-opt-in', 'none']).default('pod-key'),
  })
  .strict();

export const RunPodTargetSchema = z
  .object({
    kind: z.literal('runpod'),
    /** Ordered: the reserve step tries them in this order, one create each. */
    candidates: z.array(GpuCandidateSchema).min(1),
    image: z.string().min(1),
    containerDiskGb: positiveInt,
    volumeGb: z.number().int().min(10),
    volumeMountPath: workspacePath.default('/workspace'),
    /** A pod not reachable over SSH within this is terminated and the next candidate tried. */
    podReadyTimeoutMs: positiveInt.default(20 * 60_000),
    reservation: ReservationSettingsSchema.prefault({}),
    watchdog: WatchdogSettingsSchema.prefault({}),
  })
  .strict();

/**
 * The exclusive lock on a GPU of the team's server, so two studies (or two people) never share it: a lock folder per
 * GPU under `dir`, created atomically with an owner record (study, phase, model, workflow run, who, since), taken
 * before anything runs on the host and released when the session ends. A session asking for a held GPU waits (stage
 * `waiting-for-gpu`, naming the holder). A holder counts as gone when Temporal says its run is closed, or when its
 * session's heartbeat (`<ws>/heartbeat`, touched by every pod activity poll) is older than `staleAfterMs`.
 */
export const GpuLockSettingsSchema = z
  .object({
    /** Shared by every user of the server; created world-writable when missing (another user may take over). */
    dir: workspacePath.default('/tmp/gpu-study-locks'),
    /** Longer than any gap between touches; the default also covers an activity's retry backoff and long installs. */
    staleAfterMs: positiveInt
      .gt(
        WATCHDOG_TOUCH_INTERVAL_MS,
        `must be longer than ${WATCHDOG_TOUCH_INTERVAL_MS} ms (the longest gap between touches)`,
      )
      .default(60 * 60_000),
    /** How often a waiting session asks again (a Temporal timer each time). */
    pollIntervalMs: positiveInt.min(1_000).default(60_000),
  })
  .strict();

/** A machine the team already has (phase 1): no reservation, no termination. */
export const SshHostTargetSchema = z
  .object({
    kind: z.literal('ssh-host'),
    host: z.string().min(1),
    port: port.default(22),
    username: z.string().min(1),
    /** The server's SSH host key, checked from the first connection (no trust on first use for a known machine). */
    hostKeySha256: z
      .string({ error: 'required: the ED25519 fingerprint from `ssh-keyscan -p PORT HOST | ssh-keygen -lf -`' })
      .regex(
        /^SHA256:[A-Za-z0-9+/]{43}$/,
        'must be an OpenSSH SHA256 fingerprint (SHA256: and 43 base64 characters); get the ED25519 line of ' +
          '`ssh-keyscan -p PORT HOST | ssh-keygen -lf -`',
      ),
    gpuIndex: z.number().int().nonnegative().default(0),
    /** The server's GPU type (as RunPod spells it, e.g. `NVIDIA RTX A5000`), for the plan's fit check. */
    gpuTypeId: z.string().min(1).optional(),
    workspaceDir: workspacePath,
    gpuLock: GpuLockSettingsSchema.prefault({}),
  })
  .strict();

export type GpuCandidate = z.infer<typeof GpuCandidateSchema>;
export type RunPodTarget = z.infer<typeof RunPodTargetSchema>;
export type ReservationSettings = z.infer<typeof ReservationSettingsSchema>;
export type WatchdogSettings = z.infer<typeof WatchdogSettingsSchema>;
export type SshHostTarget = z.infer<typeof SshHostTargetSchema>;
export type GpuLockSettings = z.infer<typeof GpuLockSettingsSchema>;
