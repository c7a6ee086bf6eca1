import { z } from 'zod';

/** What `python -m harness.check` prints (pod/harness/check.py). */
export const HarnessCheckOutputSchema = z
  .object({
    problems: z.array(z.string()),
    samples: z.number().int().nonnegative().nullable(),
    duplicates: z.number().int().nonnegative().nullable(),
  })
  .strict();
export type HarnessCheckOutput = z.infer<typeof HarnessCheckOutputSchema>;

/** Its input: absolute local paths and the study's CodeCarbon settings. */
export interface HarnessCheckInput {
  datasetPath: string;
  prompts: { name: string; templatePath: string; fewShotPath: string | null }[];
  codecarbon: { countryIsoCode: string; measurePowerSecs: number; trackingMode: string };
}

const SampleId = z.union([z.string(), z.number()]);

/** What `python -m harness.preflight` prints (pod/harness/preflight.py); the plan's PreflightReport. */
export const HarnessPreflightOutputSchema = z.object({
  check: HarnessCheckOutputSchema,
  dataset: z
    .object({
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      rows: z.number().int().nonnegative(),
      unique: z.number().int().nonnegative(),
      duplicateIds: z.array(SampleId),
      labels: z.object({ vulnerable: z.number().int().nonnegative(), benign: z.number().int().nonnegative() }),
      fields: z.record(z.string(), z.number().int().nonnegative()),
      requiredMissing: z.array(z.string()),
    })
    .nullable(),
  tokens: z.array(
    z.object({
      key: z.string(),
      prompt: z.string(),
      framing: z.enum(['chat-template', 'chatml', 'none']),
      framingNote: z.string(),
      maxTokens: z.number().int().nonnegative(),
      maxId: SampleId,
      totalTokens: z.number().int().nonnegative(),
      counts: z.array(z.tuple([SampleId, z.number().int().nonnegative()])),
    }),
  ),
});
export type HarnessPreflightOutput = z.infer<typeof HarnessPreflightOutputSchema>;

/** Its input: the check's, plus one tokenizer per model (local files). */
export interface HarnessPreflightInput extends HarnessCheckInput {
  tokenizers: { key: string; tokenizerJsonPath: string; tokenizerConfigPath: string | null; thinking: boolean }[];
}
