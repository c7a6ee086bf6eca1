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
