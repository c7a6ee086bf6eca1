// After the runs: the gate's decision rule and statistics, and (sandbox only) how the simulated vLLM answers.
import { z } from 'zod';
import { positiveInt } from './schema-fields.js';

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

export type AnalysisSettings = z.infer<typeof AnalysisSettingsSchema>;
export type AnswerProfile = z.infer<typeof AnswerProfileSchema>;
