// Settings meant to stay equal across a study's phases (vLLM and CodeCarbon versions, dtype, sampling, concurrency,
// dataset, templates, prefix caching, context and batch limits), compared with what earlier phases actually ran.
// A difference the phase does not declare (`differsFromEarlierPhases`) stops the start: it would be a confound.
import { CONSISTENCY_VARIABLES, type ConsistencyVariable, type RunHistory } from './types.js';

/** What this phase will run with; `sampling` per Instruct/Thinking kind, `templates` per prompt name. */
export interface PlannedSettings {
  vllmVersion: string;
  codecarbonVersion: string | null;
  dtype: string;
  sampling: { instruct: unknown; thinking: unknown };
  concurrency: number;
  dataset: string | null;
  templates: Record<string, { templateSha256: string; fewShotSha256: string | null }>;
  prefixCaching: boolean;
  maxModelLen: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
}

export interface SettingDifference {
  variable: ConsistencyVariable;
  planned: string;
  /** Earlier values that differ, with the phases and run counts that had them. */
  earlier: { value: string; phases: string[]; runs: number }[];
  /** The phase's reason when it declares the difference; null: undeclared (a failure). */
  declared: string | null;
}

/** Stable JSON (sorted keys), so equal objects compare equal whatever their key order. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  return JSON.stringify(value ?? null);
}

/** The planned value a run is compared with, or undefined when the run has nothing comparable (another prompt). */
function plannedFor(planned: PlannedSettings, variable: ConsistencyVariable, run: RunHistory): unknown {
  switch (variable) {
    case 'sampling':
      return run.thinking ? planned.sampling.thinking : planned.sampling.instruct;
    case 'templates':
      return planned.templates[run.prompt];
    default:
      return planned[variable];
  }
}

export function compareWithEarlierPhases(input: {
  planned: PlannedSettings;
  earlierRuns: RunHistory[];
  declared: Partial<Record<ConsistencyVariable, string>>;
}): SettingDifference[] {
  const out: SettingDifference[] = [];
  for (const variable of CONSISTENCY_VARIABLES) {
    const differing = new Map<string, { phases: Set<string>; runs: number }>();
    const plannedValues = new Set<string>();
    for (const run of input.earlierRuns) {
      const want = plannedFor(input.planned, variable, run);
      const had = run.settings[variable];
      // Not recorded by the earlier run, or nothing to compare it with: no evidence either way.
      if (want === undefined || want === null || had === undefined || had === null) continue;
      if (canonical(want) === canonical(had)) continue;
      plannedValues.add(canonical(want));
      const key = canonical(had);
      const entry = differing.get(key) ?? { phases: new Set<string>(), runs: 0 };
      entry.phases.add(run.phase);
      entry.runs += 1;
      differing.set(key, entry);
    }
    if (!differing.size) continue;
    out.push({
      variable,
      planned: [...plannedValues].join(' / '),
      earlier: [...differing].map(([value, e]) => ({ value, phases: [...e.phases].sort(), runs: e.runs })),
      declared: input.declared[variable] ?? null,
    });
  }
  return out;
}
