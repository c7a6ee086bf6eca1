// The harness contract (pod/harness, docs/architecture.md "Harness contract"): what the pod's harness writes and the
// orchestrator reads, parsed with zod where it enters. The run spec it reads is RunSpec (./types.ts).
import { z } from 'zod';

/** The contract version every file below carries or assumes; the harness writes the same number. */
export const HARNESS_SCHEMA_VERSION = 1;

/** `progress.json` of the harness (contract schemaVersion 1). */
export const HarnessProgressSchema = z.object({
  state: z.enum(['running', 'done', 'failed']),
  stage: z.enum(['starting', 'baseline', 'inference', 'finishing']).optional(),
  done: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  tokensPerS: z.number().nullable().optional(),
  error: z.string().nullable().optional(),
});
export type HarnessProgress = z.infer<typeof HarnessProgressSchema>;

/** The harness's `metrics.json` (contract schemaVersion 1); only the fields the orchestrator reads. */
export const MetricsSchema = z.object({
  schemaVersion: z.literal(HARNESS_SCHEMA_VERSION),
  n: z.number().int().nonnegative(),
  accuracy: z.number().nullable(),
  precision: z.number().nullable(),
  recall: z.number().nullable(),
  f1: z.number().nullable(),
  unparseable: z.number().int().nonnegative(),
  confusion: z.object({ tp: z.number(), fp: z.number(), tn: z.number(), fn: z.number() }),
  energy: z.object({
    gpu_kwh: z.number().nullable(),
    cpu_kwh: z.number().nullable(),
    ram_kwh: z.number().nullable(),
    gpu_kwh_net_of_baseline: z.number().nullable(),
    complete: z.boolean(),
    /** Measured windows summed (more than one: the run was resumed). */
    attempts: z.number().int().nonnegative().optional(),
  }),
});

/** The harness's `environment.json`: only what the manifest summarises (GPU fields are null without a GPU). */
export const EnvironmentSchema = z.object({
  python: z.string().nullish(),
  codecarbon: z.string().nullish(),
  huggingface_hub: z.string().nullish(),
  hf_xet: z.string().nullish(),
  vllm: z.object({ version: z.string().nullish() }).nullish(),
  vllm_package: z.string().nullish(),
  torch: z.string().nullish(),
  cuda_runtime: z.string().nullish(),
  gpu: z
    .object({
      present: z.boolean(),
      count: z.number().int().nonnegative(),
      name: z.string().nullable(),
      memory_total_mib: z.number().nullable(),
      power_limit_w: z.number().nullable(),
      driver_version: z.string().nullable(),
      cuda_driver_version: z.string().nullable(),
      note: z.string().nullable(),
    })
    .nullish(),
});
export type Environment = z.infer<typeof EnvironmentSchema>;
