// What a phase evaluates: a model (repo, revision, sampling) and a prompt strategy (template, few-shot examples).
import { z } from 'zod';
import { hasDotSegment, positiveInt, projectFilePath } from './schema-fields.js';

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

export type Sampling = z.infer<typeof SamplingSchema>;
export type ModelSpec = z.infer<typeof ModelSchema>;
export type PromptStrategy = z.infer<typeof PromptStrategySchema>;
