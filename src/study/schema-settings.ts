// The study-wide run settings (a phase may override vLLM and harness): vLLM, the harness, the model download on the
// pod, CodeCarbon.
import { z } from 'zod';
import { MIN_MEASURE_POWER_SECS } from '../shared/constants.js';
import { port, positiveInt } from './schema-fields.js';

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

/** Bringing results home over SFTP (transferResults). */
export const TransferSettingsSchema = z
  .object({
    /**
     * How long one run's transfer is retried before the session gives up on it. Then the pod is stopped, not
     * terminated, so the results wait on its volume for `npm run fetch-results`.
     */
    giveUpAfterMs: positiveInt.default(2 * 3_600_000),
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

export type VllmSettings = z.infer<typeof VllmSettingsSchema>;
export type HarnessSettings = z.infer<typeof HarnessSettingsSchema>;
export type DownloadSettings = z.infer<typeof DownloadSettingsSchema>;
export type TransferSettings = z.infer<typeof TransferSettingsSchema>;
export type CodeCarbonSettings = z.infer<typeof CodeCarbonSettingsSchema>;
