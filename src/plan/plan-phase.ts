// The plan of one phase from its sources: Hub and catalog (or the study's metadata file), the harness's preflight
// (dataset facts, token counts with each model's tokenizer), the study's earlier results. Read-only: it reserves,
// writes and starts nothing. The CLI (`npm run plan`, before `start-workflow`) and the phase's first activity use it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { HubApi } from '../activities/hub/index.js';
import type { RunPodApi } from '../activities/runpod/index.js';
import {
  harnessInputFiles,
  type HarnessPreflightInput,
  type HarnessPreflightOutput,
} from '../activities/study/index.js';
import { phaseSettings, type Study } from '../study/schema.js';
import { buildPlan } from './build.js';
import { readRunHistory } from './history.js';
import { loadMetadataFile, type LoadedMetadata } from './metadata.js';
import { gatherFacts } from './sources.js';
import type { Plan } from './types.js';

/** Where the plan keeps the tokenizers it fetched from the Hub, under the project root (git-ignored). */
export const PLAN_CACHE_DIR = '.cache/plan';

export interface PlanPhaseDeps {
  projectRoot: string;
  resultsDir: string;
  /** `python -m harness.preflight` (src/activities/study/client.ts). */
  preflight: (input: HarnessPreflightInput) => Promise<HarnessPreflightOutput>;
  hub: { client: HubApi; url: string } | null;
  /** Null with no RunPod key: planning needs none (prices then come from the metadata file). */
  catalog: { client: Pick<RunPodApi, 'getGpuType'>; url: string } | null;
  /** Tokenizer files fetched from the Hub are kept here. */
  cacheDir: string;
  /** The harness's pinned requirements (pod/requirements.txt): the CodeCarbon version the pods will run. */
  podRequirementsPath: string;
  offline?: boolean;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface PlanPhaseInput {
  study: Study;
  phaseId: string;
  /** Pod cost of the study so far; default: the phases' summaries in the results folder. */
  studySpentUsd?: number;
}

const SummarySchema = z.looseObject({ costUsd: z.looseObject({ phaseTotal: z.number() }).optional() });

/** Pod cost of every phase of the study except `phaseId`, from `results/<study>/<phase>/summary.json`. */
export function spentFromResults(resultsDir: string, study: Study, phaseId: string): number {
  let total = 0;
  for (const p of study.phases) {
    if (p.id === phaseId) continue;
    const file = join(resultsDir, study.study, p.id, 'summary.json');
    if (!existsSync(file)) continue;
    try {
      total += SummarySchema.parse(JSON.parse(readFileSync(file, 'utf8'))).costUsd?.phaseTotal ?? 0;
    } catch {
      // An unreadable summary counts nothing here; the plan still shows the budget from the study file.
    }
  }
  return total;
}

/** `codecarbon==2.7.1` from the pinned requirements, or null. */
export function pinnedCodecarbon(requirementsPath: string): string | null {
  try {
    return /^codecarbon==([^\s#]+)/m.exec(readFileSync(requirementsPath, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

const sha256File = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

export async function planPhase(deps: PlanPhaseDeps, input: PlanPhaseInput): Promise<Plan> {
  const { study, phaseId } = input;
  const { phase } = phaseSettings(study, phaseId);
  const { input: files } = harnessInputFiles(study, deps.projectRoot);

  let metadata: LoadedMetadata | null = null;
  const metadataNotes: string[] = [];
  if (study.planning.metadataPath) {
    try {
      metadata = loadMetadataFile({ projectRoot: deps.projectRoot, path: study.planning.metadataPath });
    } catch (err) {
      metadataNotes.push(`the metadata file is not usable: ${(err as Error).message}`);
    }
  }
  const facts = await gatherFacts({
    phase,
    hub: deps.offline ? null : deps.hub,
    catalog: deps.offline ? null : deps.catalog,
    metadata,
    cacheDir: deps.cacheDir,
    ...(deps.offline ? { offline: true } : {}),
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  facts.notes.unshift(...metadataNotes);

  const byRepo = new Map(facts.models.map((m) => [m.repoId, m]));
  let preflight: HarnessPreflightOutput | null = null;
  let preflightError: string | undefined;
  try {
    preflight = await deps.preflight({
      ...files,
      tokenizers: phase.models.flatMap((m) => {
        const t = byRepo.get(m.repoId)?.tokenizer;
        return t
          ? [{ key: m.repoId, tokenizerJsonPath: t.jsonPath, tokenizerConfigPath: t.configPath, thinking: m.thinking }]
          : [];
      }),
    });
  } catch (err) {
    preflightError = (err as Error).message;
  }

  const history = readRunHistory({ resultsDir: deps.resultsDir, study: study.study });
  const templates = Object.fromEntries(
    files.prompts.map((p) => [
      p.name,
      { templateSha256: sha256File(p.templatePath), fewShotSha256: p.fewShotPath ? sha256File(p.fewShotPath) : null },
    ]),
  );
  return buildPlan({
    study,
    phaseId,
    facts,
    preflight,
    ...(preflightError !== undefined ? { preflightError } : {}),
    history: history.runs,
    historyNotes: history.notes,
    codecarbonVersion: pinnedCodecarbon(deps.podRequirementsPath),
    templates,
    studySpentUsd: input.studySpentUsd ?? spentFromResults(deps.resultsDir, study, phaseId),
    generatedAt: (deps.now?.() ?? new Date()).toISOString(),
  });
}
