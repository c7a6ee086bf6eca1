import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import {
  MIN_MEASURE_POWER_SECS,
  modelSlug,
  WATCHDOG_TOUCH_INTERVAL_MS,
  WORKSPACE_PATH_RE,
} from '../shared/constants.js';
import { CONSISTENCY_VARIABLES } from '../plan/types.js';

/**
 * The study file: phases, models, prompt strategies, where each phase runs and with which settings.
 * Pure (no I/O) so workflows can import the inferred types. Units are in field names.
 */

const positiveInt = z.number().int().positive();
const port = z.number().int().min(1).max(65535);
const hasDotSegment = (p: string) => p.split('/').some((part) => part === '.' || part === '..');

/** A pod-side directory: only the characters the workspace probe keeps, no `.`/`..` parts. */
const workspacePath = z
  .string()
  .regex(WORKSPACE_PATH_RE, 'must be an absolute path of letters, digits and . _ - / only')
  .refine((p) => !hasDotSegment(p), 'must not contain . or .. parts');

/**
 * A file the worker reads and uploads (dataset, template, few-shot examples): relative to the project root and
 * inside it. Symlinks and special files are refused where the file is opened (src/study/files.ts).
 */
const projectFilePath = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..') && !/[\0\n\r]/.test(p),
    'must be a path inside the project, relative to its root (no leading /, no .., no control characters)',
  );

/**
 * A phase's overrides of a study-wide settings object: every field optional and without its default. (`.partial()`
 * keeps defaults, so an override of one field would silently reset every defaulted field to its default.)
 */
function overridesOf<S extends z.ZodObject>(schema: S): z.ZodType<Partial<z.output<S>>> {
  const shape = Object.fromEntries(
    Object.entries(schema.shape as Record<string, z.ZodType>).map(([key, field]) => [
      key,
      (field instanceof z.ZodDefault ? (field.unwrap() as z.ZodType) : field).optional(),
    ]),
  );
  return z.strictObject(shape) as unknown as z.ZodType<Partial<z.output<S>>>;
}

export const SamplingSchema = z
  .object({
    temperature: z.number().min(0).max(2),
    topP: z.number().gt(0).max(1),
    topK: z.number().int().min(-1),
    minP: z.number().min(0).max(1).default(0),
    maxTokens: positiveInt,
    seed: z.number().int().nonnegative(),
  })
  .strict();

export const VllmSettingsSchema = z
  .object({
    /** Pinned vLLM version installed on the pod (recorded in every manifest). */
    version: z.string().regex(/^[\w.+!-]+$/, 'must be a version such as 0.11.0'),
    dtype: z.enum(['bfloat16', 'float16', 'auto']).default('bfloat16'),
    maxModelLen: positiveInt,
    maxNumSeqs: positiveInt,
    maxNumBatchedTokens: positiveInt,
    seed: z.number().int().nonnegative(),
    gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9),
    /** Defaults to the pod's GPU count (the winning candidate's `gpuCount`). */
    tensorParallelSize: positiveInt.optional(),
    enablePrefixCaching: z.boolean(),
    port: port.default(8000),
    startupTimeoutMs: positiveInt.default(30 * 60_000),
  })
  .strict();

export const HarnessSettingsSchema = z
  .object({
    concurrency: positiveInt,
    /** Idle seconds measured with vLLM loaded, before each run, on the same pod. */
    baselineSeconds: z.number().int().nonnegative(),
    requestTimeoutS: positiveInt.default(600),
    /** Evaluate only the first N unique samples (smoke runs); null = all. */
    limit: positiveInt.nullable().default(null),
    /**
     * When the model server dies under a run: `restart` reruns the prompt strategy from scratch on a fresh
     * measurement (a new run id); `resume` continues from the predictions file, and the manifest marks that run's
     * energy as not comparable.
     */
    interruptionPolicy: z.enum(['restart', 'resume']).default('restart'),
    /** Model-server deaths tolerated per prompt strategy before the session fails. */
    maxInterruptions: z.number().int().nonnegative().default(2),
  })
  .strict();

/** Model download on the pod (`hf download` watched by bytes on disk, then verified). */
export const DownloadSettingsSchema = z
  .object({
    /** No byte written for this long: kill and resume with Xet off. Default: the worker's DOWNLOAD_STALL_TIMEOUT_MS. */
    stallTimeoutMs: positiveInt.optional(),
    /** Also hash every weight file against the Hub's sha256 before `.complete` (minutes for tens of GB). */
    verifySha256: z.boolean().default(false),
  })
  .strict();

export const CodeCarbonSettingsSchema = z
  .object({
    countryIsoCode: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 3166-1 alpha-3 code such as USA'),
    measurePowerSecs: z
      .number()
      .min(MIN_MEASURE_POWER_SECS, `must be at least ${MIN_MEASURE_POWER_SECS} s (the harness refuses less)`)
      .default(1),
    trackingMode: z.enum(['machine', 'process']).default('machine'),
  })
  .strict();

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

export const ModelSchema = z
  .object({
    repoId: z
      .string()
      .regex(/^[\w.-]+\/[\w.-]+$/, 'must look like owner/name')
      .refine((r) => !hasDotSegment(r), 'owner and name must not be . or ..'),
    /** A commit sha pins the weights; a branch name is resolved and the sha recorded in the manifest. */
    revision: z
      .string()
      .regex(/^[\w.-]+(\/[\w.-]+)*$/, 'must be a commit sha, branch or tag name')
      .refine((r) => !hasDotSegment(r), 'must not contain . or .. parts')
      .default('main'),
    thinking: z.boolean().default(false),
    /** vLLM reasoning parser; only thinking models get one. */
    reasoningParser: z
      .string()
      .regex(/^[\w-]+$/, 'letters, digits, _ and - (a vLLM reasoning parser name)')
      .optional(),
    sampling: SamplingSchema,
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.reasoningParser && !m.thinking) {
      ctx.addIssue({
        code: 'custom',
        path: ['reasoningParser'],
        message: 'only thinking models take a reasoning parser',
      });
    }
  });

export const PromptStrategySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/, 'lower-case letters, digits and dashes'),
    templatePath: projectFilePath,
    /** Few-shot examples; they must not come from the evaluated dataset (checked at start and on the pod). */
    fewShotExamplesPath: projectFilePath.optional(),
  })
  .strict();

/**
 * The gate's rule and the statistics behind it. "Clearly" improves (or degrades) means: McNemar p (Holm-adjusted
 * across the models when `multipleComparisons: holm`) below `alpha`, and, with `requireCiExcludesZero`, the paired
 * bootstrap interval of the `metric` difference excludes 0 in the same direction.
 */
export const DecisionSettingsSchema = z
  .object({
    /** The contrast the study's rule is about, within each model: treatment vs baseline prompt strategy. */
    baselinePrompt: z.string().min(1).default('zero-shot'),
    treatmentPrompt: z.string().min(1).default('few-shot'),
    metric: z.enum(['f1', 'accuracy', 'macroF1', 'mcc']).default('f1'),
    alpha: z.number().gt(0).lt(1).default(0.05),
    requireCiExcludesZero: z.boolean().default(true),
    /** `cluster` resamples whole commits (a vulnerable function and its fix are correlated): wider, more honest. */
    ciResampling: z.enum(['cluster', 'sample']).default('cluster'),
    multipleComparisons: z.enum(['holm', 'none']).default('holm'),
  })
  .strict();

export const AnalysisSettingsSchema = z
  .object({
    decision: DecisionSettingsSchema.prefault({}),
    bootstrap: z
      .object({
        resamples: z.number().int().min(10_000).default(10_000),
        seed: z.number().int().nonnegative().default(20260101),
        confidence: z.number().gt(0.5).lt(1).default(0.95),
      })
      .strict()
      .prefault({}),
    /**
     * Variables the study varies on purpose: runs may differ in these (differs-as-declared); any other controlled
     * variable that differs is a confound, shown in the packet and the report.
     */
    variablesUnderStudy: z.array(z.string().min(1)).default(['model', 'prompt']),
    /** Model-scale comparisons across phases (same prompt, same Instruct/Thinking kind). */
    crossPhase: z.array(z.object({ from: z.string().min(1), to: z.string().min(1) }).strict()).default([]),
    gate: z
      .object({
        /** No decision by then: the study stops before the next phase (spends nothing). Null: wait for ever. */
        timeoutMs: positiveInt.nullable().default(null),
        /** A reminder in the worker log and the Web UI's current details while the gate waits. */
        reminderEveryMs: positiveInt.default(6 * 3_600_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** How the simulated vLLM answers one prompt strategy (sandbox only): deterministic by sample, model and seed. */
export const AnswerProfileSchema = z
  .object({
    accuracy: z.number().min(0).max(1),
    /** Share of the errors that are false YES (benign called vulnerable). */
    yesBias: z.number().min(0).max(1).default(0.5),
    /** Share of replies without a FINAL ANSWER line. */
    unparseable: z.number().min(0).max(1).default(0),
  })
  .strict();

/** Sandbox only (`simulated: true`): per model repo id and prompt name, how the simulated vLLM answers. */
export const SimulationSettingsSchema = z
  .object({
    answerProfiles: z.record(z.string(), z.record(z.string(), AnswerProfileSchema)).default({}),
    /** Probability that a sample's correctness is shared between a model's prompt strategies (paired runs correlate). */
    sharedLatent: z.number().min(0).max(1).default(0.7),
  })
  .strict();

/**
 * How the plan (src/plan/) estimates a phase before it starts: memory fit, time and cost. Measured rates of earlier
 * runs replace the defaults where they exist; the plan names which one it used.
 */
export const PlanningSettingsSchema = z
  .object({
    /** Hub and catalog figures for planning with no network (dated), relative to the project root. */
    metadataPath: projectFilePath.optional(),
    /** Per GPU, besides weights and KV cache: CUDA context, activations, CUDA graphs (vLLM profiles it at start). */
    runtimeOverheadGib: z.number().nonnegative().default(4),
    /** Model download speed onto the pod (Hub / Xet CDN). */
    downloadMBps: z.number().positive().default(100),
    /** Pulling the pod's container image (RunPod only). */
    imagePullMs: z
      .number()
      .int()
      .nonnegative()
      .default(5 * 60_000),
    /** vLLM start: weights read from disk at this rate, plus a fixed part (compile, CUDA graphs, KV profiling). */
    loadMBps: z.number().positive().default(1000),
    loadFixedMs: z
      .number()
      .int()
      .nonnegative()
      .default(3 * 60_000),
    /**
     * Decode is memory-bound: a step reads the active weights once for the whole batch, so the rate is about
     * efficiency x concurrency x bandwidth x GPUs / active bytes. Earlier runs on the study calibrate it.
     */
    decodeEfficiency: z.number().gt(0).max(1).default(0.15),
    /** Mean completion tokens per sample until an earlier run measured it (capped at each model's maxTokens). */
    outputTokensPerSample: z
      .object({ instruct: positiveInt.default(800), thinking: positiveInt.default(6000) })
      .strict()
      .prefault({}),
  })
  .strict();

export const PhaseSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9]+$/, 'lower-case letters and digits'),
    description: z.string().default(''),
    models: z.array(ModelSchema).min(1),
    target: z.discriminatedUnion('kind', [RunPodTargetSchema, SshHostTargetSchema]),
    /** How many models of this phase run at the same time (each on its own pod). */
    maxConcurrentSessions: positiveInt.default(1),
    /**
     * A different GPU is a different experiment: when set, every model of the phase runs on the GPU type the
     * first reservation won (later sessions wait for capacity of that type rather than mix).
     */
    requireSameGpuType: z.boolean().default(false),
    /** Spending limit of this phase and the estimate committed before each pod session starts. */
    budget: z
      .object({
        phaseUsd: z.number().positive().optional(),
        sessionEstimateUsd: z.number().nonnegative(),
      })
      .strict()
      .optional(),
    /**
     * Settings this phase changes on purpose against earlier phases (the plan's cross-phase check stops on any other
     * difference), each with the reason, e.g. `{ maxModelLen: "longer prompts need 64k" }`.
     */
    differsFromEarlierPhases: z.partialRecord(z.enum(CONSISTENCY_VARIABLES), z.string().min(1)).default({}),
    /** Overrides of the study-wide settings for this phase. */
    vllm: overridesOf(VllmSettingsSchema).optional(),
    harness: overridesOf(HarnessSettingsSchema).optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    // A model's session workflow id and results folder come from its slug: two models may not share one.
    const bySlug = new Map<string, string>();
    p.models.forEach((m, i) => {
      // Case-insensitive: folder names clash on macOS and Windows file systems.
      const slug = modelSlug(m.repoId);
      const other = bySlug.get(slug.toLowerCase());
      if (other !== undefined) {
        const message =
          other === m.repoId ? `duplicate model ${m.repoId}` : `${m.repoId} and ${other} share the folder name ${slug}`;
        ctx.addIssue({ code: 'custom', path: ['models', i, 'repoId'], message });
      }
      bySlug.set(slug.toLowerCase(), m.repoId);
    });
  });

export const StudySchema = z
  .object({
    // No `--`: pod names use it to separate study, phase, model and run token.
    study: z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'lower-case letters and digits, single dashes between'),
    description: z.string().default(''),
    datasetPath: projectFilePath,
    prompts: z.array(PromptStrategySchema).min(1),
    vllm: VllmSettingsSchema,
    harness: HarnessSettingsSchema,
    codecarbon: CodeCarbonSettingsSchema,
    download: DownloadSettingsSchema.prefault({}),
    planning: PlanningSettingsSchema.prefault({}),
    phases: z.array(PhaseSchema).min(1),
    /** Spending limit over all phases (pod cost); checked before each pod session with its estimate. */
    budgetUsd: z.number().positive().optional(),
    /** Set by the sandbox overlay: results are marked simulated and never mix with real ones. */
    simulated: z.boolean().default(false),
    analysis: AnalysisSettingsSchema.prefault({}),
    /** How the sandbox's simulated vLLM answers (only with `simulated: true`). */
    simulation: SimulationSettingsSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const seen = new Set<string>();
    s.phases.forEach((p, i) => {
      if (seen.has(p.id))
        ctx.addIssue({ code: 'custom', path: ['phases', i, 'id'], message: `duplicate phase ${p.id}` });
      seen.add(p.id);
    });
    const names = new Set<string>();
    s.prompts.forEach((p, i) => {
      if (names.has(p.name))
        ctx.addIssue({ code: 'custom', path: ['prompts', i, 'name'], message: `duplicate prompt ${p.name}` });
      names.add(p.name);
    });
    const { decision, crossPhase } = s.analysis;
    for (const key of ['baselinePrompt', 'treatmentPrompt'] as const) {
      if (!names.has(decision[key]))
        ctx.addIssue({
          code: 'custom',
          path: ['analysis', 'decision', key],
          message: `no prompt named ${decision[key]} (prompts: ${[...names].join(', ')})`,
        });
    }
    crossPhase.forEach((c, i) => {
      for (const key of ['from', 'to'] as const) {
        if (!seen.has(c[key]))
          ctx.addIssue({ code: 'custom', path: ['analysis', 'crossPhase', i, key], message: `no phase ${c[key]}` });
      }
    });
    if (s.simulation && !s.simulated)
      ctx.addIssue({
        code: 'custom',
        path: ['simulation'],
        message: 'only a simulated study (the sandbox) may set it',
      });
    const models = new Set(s.phases.flatMap((p) => p.models.map((m) => m.repoId)));
    for (const [repoId, byPrompt] of Object.entries(s.simulation?.answerProfiles ?? {})) {
      if (!models.has(repoId))
        ctx.addIssue({ code: 'custom', path: ['simulation', 'answerProfiles', repoId], message: 'no such model' });
      for (const prompt of Object.keys(byPrompt)) {
        if (!names.has(prompt))
          ctx.addIssue({
            code: 'custom',
            path: ['simulation', 'answerProfiles', repoId, prompt],
            message: 'no such prompt',
          });
      }
    }
  });

export type Sampling = z.infer<typeof SamplingSchema>;
export type VllmSettings = z.infer<typeof VllmSettingsSchema>;
export type HarnessSettings = z.infer<typeof HarnessSettingsSchema>;
export type DownloadSettings = z.infer<typeof DownloadSettingsSchema>;
export type CodeCarbonSettings = z.infer<typeof CodeCarbonSettingsSchema>;
export type GpuCandidate = z.infer<typeof GpuCandidateSchema>;
export type RunPodTarget = z.infer<typeof RunPodTargetSchema>;
export type ReservationSettings = z.infer<typeof ReservationSettingsSchema>;
export type WatchdogSettings = z.infer<typeof WatchdogSettingsSchema>;
export type SshHostTarget = z.infer<typeof SshHostTargetSchema>;
export type GpuLockSettings = z.infer<typeof GpuLockSettingsSchema>;
export type ModelSpec = z.infer<typeof ModelSchema>;
export type PromptStrategy = z.infer<typeof PromptStrategySchema>;
export type Phase = z.infer<typeof PhaseSchema>;
export type PlanningSettings = z.infer<typeof PlanningSettingsSchema>;
export type AnalysisSettings = z.infer<typeof AnalysisSettingsSchema>;
export type AnswerProfile = z.infer<typeof AnswerProfileSchema>;
export type Study = z.infer<typeof StudySchema>;

/** Effective settings of one phase: study-wide values with the phase's overrides on top. Pure. */
export function phaseSettings(
  study: Study,
  phaseId: string,
): { phase: Phase; vllm: VllmSettings; harness: HarnessSettings } {
  const phase = study.phases.find((p) => p.id === phaseId);
  if (!phase) {
    // An ApplicationFailure, so that inside a workflow it fails the workflow instead of retrying the task.
    const known = study.phases.map((p) => p.id).join(', ');
    throw ApplicationFailure.nonRetryable(
      `unknown phase ${phaseId} (study ${study.study} has: ${known})`,
      'StudyInvalidError',
    );
  }
  return { phase, vllm: { ...study.vllm, ...phase.vllm }, harness: { ...study.harness, ...phase.harness } };
}
