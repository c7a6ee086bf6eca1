import type { Study } from '../../src/study/schema.js';

/**
 * A study cut down by a test (fewer prompts or models) made valid again, as the worker now re-validates every
 * workflow input: the decision's prompts fall back to the first one kept, and the simulated answer profiles keep
 * only the models and prompts still there (so the kept ones answer exactly as before).
 */
export function consistentCut(study: Study): Study {
  const prompts = new Set(study.prompts.map((p) => p.name));
  const models = new Set(study.phases.flatMap((p) => p.models.map((m) => m.repoId)));
  const first = study.prompts[0]?.name ?? 'zero-shot';
  const { decision } = study.analysis;
  const profiles = Object.fromEntries(
    Object.entries(study.simulation?.answerProfiles ?? {})
      .filter(([repoId]) => models.has(repoId))
      .map(([repoId, byPrompt]) => [
        repoId,
        Object.fromEntries(Object.entries(byPrompt).filter(([name]) => prompts.has(name))),
      ]),
  );
  return {
    ...study,
    analysis: {
      ...study.analysis,
      decision: {
        ...decision,
        baselinePrompt: prompts.has(decision.baselinePrompt) ? decision.baselinePrompt : first,
        treatmentPrompt: prompts.has(decision.treatmentPrompt) ? decision.treatmentPrompt : first,
      },
    },
    ...(study.simulation ? { simulation: { ...study.simulation, answerProfiles: profiles } } : {}),
  };
}
