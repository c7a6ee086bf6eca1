import { z } from 'zod';

/** The harness's `metrics.json` (contract schemaVersion 1); only the fields the orchestrator reads. */
export const MetricsSchema = z.object({
  schemaVersion: z.literal(1),
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
  }),
});
