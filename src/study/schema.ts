// The study file: phases, models, prompt strategies, where each phase runs and with which settings. Pure (no I/O) so
// workflows can import the inferred types; units are in field names. The one entry point: StudySchema composes the
// pieces in schema-*.ts, and each piece is re-exported here.
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { AnalysisSettingsSchema, SimulationSettingsSchema } from './schema-analysis.js';
import { projectFilePath } from './schema-fields.js';
import { PromptStrategySchema } from './schema-model.js';
import { PhaseSchema, type Phase } from './schema-phase.js';
import { PlanningSettingsSchema } from './schema-planning.js';
import {
  CodeCarbonSettingsSchema,
  DownloadSettingsSchema,
  HarnessSettingsSchema,
  TransferSettingsSchema,
  VllmSettingsSchema,
  type HarnessSettings,
  type VllmSettings,
} from './schema-settings.js';

export {
  AnalysisSettingsSchema,
  AnswerProfileSchema,
  DecisionSettingsSchema,
  SimulationSettingsSchema,
  type AnalysisSettings,
  type AnswerProfile,
} from './schema-analysis.js';
export {
  ModelSchema,
  PromptStrategySchema,
  SamplingSchema,
  type ModelSpec,
  type PromptStrategy,
  type Sampling,
} from './schema-model.js';
export { PhaseSchema, type Phase } from './schema-phase.js';
export { PlanningSettingsSchema, type PlanningSettings } from './schema-planning.js';
export {
  CodeCarbonSettingsSchema,
  DownloadSettingsSchema,
  HarnessSettingsSchema,
  TransferSettingsSchema,
  VllmSettingsSchema,
  type CodeCarbonSettings,
  type DownloadSettings,
  type HarnessSettings,
  type TransferSettings,
  type VllmSettings,
} from './schema-settings.js';
export {
  GpuCandidateSchema,
  GpuLockSettingsSchema,
  ReservationSettingsSchema,
  RunPodTargetSchema,
  SshHostTargetSchema,
  WatchdogSettingsSchema,
  type GpuCandidate,
  type GpuLockSettings,
  type ReservationSettings,
  type RunPodTarget,
  type SshHostTarget,
  type WatchdogSettings,
} from './schema-target.js';

export const StudySchema = z
  .object({
    // No `--`: pod names use it to separate study, phase, model and run token.
    study: z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'lower-case letters and digits, single dashes between'),
    description: z.string().default(''),
    datasetPath: projectFilePath,
    prompts: z.array(PromptStrategySchema).min(1),
    vllm: VllmSettingsSchema,
    harness: HarnessSettingsSchema,
    codecarbon: CodeCarbonSettingsSchema,
    download: DownloadSettingsSchema.prefault({}),
    transfer: TransferSettingsSchema.prefault({}),
    planning: PlanningSettingsSchema.prefault({}),
    phases: z.array(PhaseSchema).min(1),
    /** Spending limit over all phases (pod cost); checked before each pod session with its estimate. */
    budgetUsd: z.number().positive().optional(),
    /** Set by the sandbox overlay: results are marked simulated and never mix with real ones. */
    simulated: z.boolean().default(false),
    analysis: AnalysisSettingsSchema.prefault({}),
    /** How the sandbox's simulated vLLM answers (only with `simulated: true`). */
    simulation: SimulationSettingsSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const seen = new Set<string>();
    s.phases.forEach((p, i) => {
      if (seen.has(p.id))
        ctx.addIssue({ code: 'custom', path: ['phases', i, 'id'], message: `duplicate phase ${p.id}` });
      seen.add(p.id);
    });
    const names = new Set<string>();
    s.prompts.forEach((p, i) => {
      if (names.has(p.name))
        ctx.addIssue({ code: 'custom', path: ['prompts', i, 'name'], message: `duplicate prompt ${p.name}` });
      names.add(p.name);
    });
    const { decision, crossPhase } = s.analysis;
    for (const key of ['baselinePrompt', 'treatmentPrompt'] as const) {
      if (!names.has(decision[key]))
        ctx.addIssue({
          code: 'custom',
          path: ['analysis', 'decision', key],
          message: `no prompt named ${decision[key]} (prompts: ${[...names].join(', ')})`,
        });
    }
    crossPhase.forEach((c, i) => {
      for (const key of ['from', 'to'] as const) {
        if (!seen.has(c[key]))
          ctx.addIssue({ code: 'custom', path: ['analysis', 'crossPhase', i, key], message: `no phase ${c[key]}` });
      }
    });
    if (s.simulation && !s.simulated)
      ctx.addIssue({
        code: 'custom',
        path: ['simulation'],
        message: 'only a simulated study (the sandbox) may set it',
      });
    const models = new Set(s.phases.flatMap((p) => p.models.map((m) => m.repoId)));
    for (const [repoId, byPrompt] of Object.entries(s.simulation?.answerProfiles ?? {})) {
      if (!models.has(repoId))
        ctx.addIssue({ code: 'custom', path: ['simulation', 'answerProfiles', repoId], message: 'no such model' });
      for (const prompt of Object.keys(byPrompt)) {
        if (!names.has(prompt))
          ctx.addIssue({
            code: 'custom',
            path: ['simulation', 'answerProfiles', repoId, prompt],
            message: 'no such prompt',
          });
      }
    }
  });

export type Study = z.infer<typeof StudySchema>;

/** Effective settings of one phase: study-wide values with the phase's overrides on top. Pure. */
export function phaseSettings(
  study: Study,
  phaseId: string,
): { phase: Phase; vllm: VllmSettings; harness: HarnessSettings } {
  const phase = study.phases.find((p) => p.id === phaseId);
  if (!phase) {
    // An ApplicationFailure, so that inside a workflow it fails the workflow instead of retrying the task.
    const known = study.phases.map((p) => p.id).join(', ');
    throw ApplicationFailure.nonRetryable(
      `unknown phase ${phaseId} (study ${study.study} has: ${known})`,
      'StudyInvalidError',
    );
  }
  return { phase, vllm: { ...study.vllm, ...phase.vllm }, harness: { ...study.harness, ...phase.harness } };
}
