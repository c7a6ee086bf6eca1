// The plan's estimating settings (src/plan/): metadata file, memory overhead, download, load and decode rates.
import { z } from 'zod';
import { positiveInt, projectFilePath } from './schema-fields.js';

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

export type PlanningSettings = z.infer<typeof PlanningSettingsSchema>;
