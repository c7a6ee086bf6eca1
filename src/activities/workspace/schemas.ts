import { z } from 'zod';

/** A field of a GPU lock's owner record: other users of the server write these, so capped and printable only. */
const lockText = (max: number) =>
  z
    .string()
    .max(max)
    // eslint-disable-next-line no-control-regex
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'control characters');

/** `owner.json` in a GPU's lock folder on the team's server (src/activities/workspace/gpu-lock.ts). */
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
