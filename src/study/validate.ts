import { ApplicationFailure } from '@temporalio/common';
import { ErrorTypes } from '../shared/errors.js';
import { ModelSchema, StudySchema, type ModelSpec, type Phase, type Study } from './schema.js';

/**
 * Workflow inputs come from whoever can start a workflow in the namespace (the Web UI can), not only from the CLI's
 * loader: each workflow re-validates its study with the same schema before any activity acts on it. Pure and
 * deterministic (safe in workflow code); parsing an already-parsed study gives the same object.
 */

export interface ValidateWorkflowInput {
  study: unknown;
  /** When given: must be one of the study's phases. */
  phaseId?: string;
  /** When given (with phaseId): must be one of that phase's models, exactly. */
  model?: unknown;
}

const invalid = (problems: string[]) =>
  ApplicationFailure.create({
    type: ErrorTypes.StudyInvalid,
    message: `the workflow's study input is not valid: ${problems.join('; ')}`,
    nonRetryable: true,
    details: [problems],
  });

/** The validated study (and phase and model), or a non-retryable StudyInvalidError naming every problem. */
export function validateWorkflowInput(input: { study: unknown; phaseId: string; model: unknown }): {
  study: Study;
  phase: Phase;
  model: ModelSpec;
};
export function validateWorkflowInput(input: { study: unknown; phaseId: string }): { study: Study; phase: Phase };
export function validateWorkflowInput(input: { study: unknown }): { study: Study };
export function validateWorkflowInput(input: ValidateWorkflowInput): {
  study: Study;
  phase?: Phase;
  model?: ModelSpec;
} {
  const parsed = StudySchema.safeParse(input.study);
  if (!parsed.success) {
    throw invalid(parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`));
  }
  const study = parsed.data;
  if (input.phaseId === undefined) return { study };
  const phase = study.phases.find((p) => p.id === input.phaseId);
  if (!phase) {
    throw invalid([
      `phaseId: no phase ${String(input.phaseId)} (the study has ${study.phases.map((p) => p.id).join(', ')})`,
    ]);
  }
  if (input.model === undefined) return { study, phase };
  // Exactly one of the phase's models (after defaults): no model object of the caller's own making.
  const m = ModelSchema.safeParse(input.model);
  const same = m.success ? phase.models.find((pm) => JSON.stringify(pm) === JSON.stringify(m.data)) : undefined;
  if (!same) {
    const repoId = m.success ? m.data.repoId : '(invalid model)';
    throw invalid([`model: ${repoId} is not one of phase ${phase.id}'s models, as the study defines them`]);
  }
  return { study, phase, model: same };
}
