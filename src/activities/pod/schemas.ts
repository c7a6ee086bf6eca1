import { z } from 'zod';

/** Output of `python3 -m harness.verify_model` (pod/harness/verify_model.py). */
export const VerifyResultSchema = z.object({
  ok: z.boolean(),
  commitSha: z.string(),
  problems: z.array(z.string()),
  /** Files it rejected and deleted (with hf's local-dir metadata), so the next download fetches them again. */
  deleted: z.array(z.string()),
  files: z.array(z.object({ path: z.string(), bytes: z.number().int().nonnegative() })),
  sha256Verified: z.boolean(),
});

/** The `.complete` marker written next to a verified model. */
export const CompleteMarkerSchema = z.object({
  repo: z.string(),
  revision: z.string(),
  commitSha: z.string(),
  files: z.array(z.object({ path: z.string(), bytes: z.number().int().nonnegative() })),
  sha256Verified: z.boolean().optional(),
});

/** `<model>.download.no-xet`: why an earlier attempt turned Xet off (kept on the pod for retries). */
export const XetFallbackSchema = z.object({
  reason: z.enum(['stall', 'xet-error']),
  atBytes: z.number().nonnegative(),
  detail: z.string(),
});

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

/** vLLM `GET /v1/models`. */
export const ModelsListSchema = z.object({ data: z.array(z.object({ id: z.string() })) });

/** vLLM `GET /version`. */
export const VllmVersionSchema = z.object({ version: z.string() });

/** A field of a GPU lock's owner record: other users of the server write these, so capped and printable only. */
const lockText = (max: number) =>
  z
    .string()
    .max(max)
    // eslint-disable-next-line no-control-regex
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'control characters');

/** `owner.json` in a GPU's lock folder on the team's server (src/activities/pod/gpu-lock.ts). */
export const GpuLockRecordSchema = z.object({
  schemaVersion: z.literal(1),
  study: lockText(200),
  phase: lockText(100),
  model: lockText(200),
  workflowId: lockText(400),
  runId: lockText(100),
  gpuIndex: z.number().int().nonnegative(),
  startedBy: lockText(300),
  acquiredAt: lockText(40),
  heartbeatPath: lockText(1000),
});
