// One phase of the study: its models, target, concurrency, budget, declared differences and settings overrides.
import { z } from 'zod';
import { CONSISTENCY_VARIABLES } from '../plan/types.js';
import { modelSlug } from '../shared/constants.js';
import { overridesOf, positiveInt } from './schema-fields.js';
import { ModelSchema } from './schema-model.js';
import { HarnessSettingsSchema, VllmSettingsSchema } from './schema-settings.js';
import { RunPodTargetSchema, SshHostTargetSchema } from './schema-target.js';

export const PhaseSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9]+$/, 'lower-case letters and digits'),
    description: z.string().default(''),
    models: z.array(ModelSchema).min(1),
    target: z.discriminatedUnion('kind', [RunPodTargetSchema, SshHostTargetSchema]),
    /** How many models of this phase run at the same time (each on its own pod). */
    maxConcurrentSessions: positiveInt.default(1),
    /**
     * A different GPU is a different experiment: when set, every model of the phase runs on the GPU type the
     * first reservation won (later sessions wait for capacity of that type rather than mix).
     */
    requireSameGpuType: z.boolean().default(false),
    /** Spending limit of this phase and the estimate committed before each pod session starts. */
    budget: z
      .object({
        phaseUsd: z.number().positive().optional(),
        sessionEstimateUsd: z.number().nonnegative(),
      })
      .strict()
      .optional(),
    /**
     * Settings this phase changes on purpose against earlier phases (the plan's cross-phase check stops on any other
     * difference), each with the reason, e.g. `{ maxModelLen: "longer prompts need 64k" }`.
     */
    differsFromEarlierPhases: z.partialRecord(z.enum(CONSISTENCY_VARIABLES), z.string().min(1)).default({}),
    /** Overrides of the study-wide settings for this phase. */
    vllm: overridesOf(VllmSettingsSchema).optional(),
    harness: overridesOf(HarnessSettingsSchema).optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    // A model's session workflow id and results folder come from its slug: two models may not share one.
    const bySlug = new Map<string, string>();
    p.models.forEach((m, i) => {
      // Case-insensitive: folder names clash on macOS and Windows file systems.
      const slug = modelSlug(m.repoId);
      const other = bySlug.get(slug.toLowerCase());
      if (other !== undefined) {
        const message =
          other === m.repoId ? `duplicate model ${m.repoId}` : `${m.repoId} and ${other} share the folder name ${slug}`;
        ctx.addIssue({ code: 'custom', path: ['models', i, 'repoId'], message });
      }
      bySlug.set(slug.toLowerCase(), m.repoId);
    });
  });

export type Phase = z.infer<typeof PhaseSchema>;
