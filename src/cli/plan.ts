// `npm run plan` and the plan `start-workflow` shows before it asks: the plan's sources as the CLI builds them
// (read-only clients), printing, and the confirmation question.
import { createInterface } from 'node:readline/promises';
import { resolve } from 'node:path';
import { HubClient, DEFAULT_HUB_URL } from '../activities/hub/index.js';
import { RunPodClient } from '../activities/runpod/index.js';
import { HarnessCheckClient } from '../activities/study/index.js';
import type { Env } from '../config.js';
import { loadMetadataFile, writeMetadataFile } from '../plan/metadata.js';
import { PLAN_CACHE_DIR, type PlanPhaseDeps } from '../plan/plan-phase.js';
import { writeMetadataFromFacts } from '../plan/metadata-refresh.js';
import { gatherFacts } from '../plan/sources.js';
import { phaseSettings, type Study } from '../study/schema.js';
import { formatPlan } from '../plan/render.js';
import type { Plan } from '../plan/types.js';

/** Read-only planning clients from the configuration; no RunPod key means no catalog (prices from the metadata file). */
export function planDeps(config: Env, opts: { offline: boolean }): PlanPhaseDeps {
  const root = config.PROJECT_ROOT;
  const harness = new HarnessCheckClient({
    python: resolve(root, config.ANALYSIS_PYTHON),
    harnessDir: resolve(root, 'pod/harness'),
  });
  const hubUrl = config.HF_ENDPOINT ?? DEFAULT_HUB_URL;
  return {
    projectRoot: root,
    resultsDir: resolve(root, config.RESULTS_DIR),
    preflight: (input) => harness.preflight(input),
    hub: {
      client: new HubClient({ baseUrl: hubUrl, ...(config.HF_TOKEN ? { token: config.HF_TOKEN } : {}) }),
      url: hubUrl,
    },
    catalog: config.RUNPOD_API_KEY
      ? {
          client: new RunPodClient({
            apiKey: config.RUNPOD_API_KEY,
            baseUrl: config.RUNPOD_BASE_URL,
            timeoutMs: config.RUNPOD_TIMEOUT_MS,
          }),
          url: config.RUNPOD_BASE_URL,
        }
      : null,
    cacheDir: resolve(root, PLAN_CACHE_DIR),
    podRequirementsPath: resolve(root, 'pod/requirements.txt'),
    offline: opts.offline,
  };
}

export function printPlan(plan: Plan, opts: { json: boolean; verbose: boolean }): void {
  console.log(opts.json ? JSON.stringify(plan, null, 2) : formatPlan(plan, { verbose: opts.verbose }).join('\n'));
}

/**
 * Asks on the terminal whether to start. Never asks without one: the caller must pass --yes, so a script or CI job
 * never starts a paid phase by accident (and never hangs on a question nobody sees).
 */
export async function confirmStart(question: string): Promise<'yes' | 'no' | 'no-terminal'> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) return 'no-terminal';
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    return answer === 'y' || answer === 'yes' ? 'yes' : 'no';
  } finally {
    rl.close();
  }
}

/**
 * `plan --save-metadata`: the live Hub and catalog figures of the phase's models and GPUs into the study's metadata
 * file (dated), so a later plan works offline. Entries it could not refresh are kept and marked as carried over.
 */
export async function saveMetadata(input: {
  deps: PlanPhaseDeps;
  study: Study;
  phaseId: string;
  path: string;
}): Promise<string> {
  const { deps } = input;
  const { phase } = phaseSettings(input.study, input.phaseId);
  let previous = null;
  try {
    previous = loadMetadataFile({ projectRoot: deps.projectRoot, path: input.path });
  } catch {
    // No usable file yet: write a fresh one.
  }
  // Live only: a figure the Hub or catalog did not give must not be re-dated from the old file.
  const facts = await gatherFacts({
    phase,
    hub: deps.hub,
    catalog: deps.catalog,
    metadata: null,
    cacheDir: deps.cacheDir,
  });
  const { metadata, notes } = writeMetadataFromFacts({
    facts,
    previous: previous?.metadata ?? null,
    takenAt: new Date().toISOString(),
  });
  const file = writeMetadataFile({ projectRoot: deps.projectRoot, path: input.path, metadata });
  return [`metadata: wrote ${file}`, ...facts.notes, ...notes]
    .map((l) => `  ${l}`)
    .join('\n')
    .trimStart();
}
