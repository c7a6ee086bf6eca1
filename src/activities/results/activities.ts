import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { sha256File } from '../pod/activities.js';
import type {
  RunManifest,
  RunMetricsSummary,
  SummarizePhaseInput,
  SummarizePhaseOutput,
  WriteRunManifestInput,
  WriteRunManifestOutput,
} from '../../shared/types.js';
import { HarnessContractError } from '../pod/errors.js';
import { MetricsSchema } from './schemas.js';

export const CHECKSUM_FILE = 'checksums.sha256';
export const MANIFEST_FILE = 'manifest.json';

export interface ResultsActivityDeps {
  /** Absolute results root (`results/`). */
  resultsDir: string;
}

function writeAtomic(path: string, content: string) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Controlled variables: runs meant to be compared must agree on every one of these. */
const CONTROLLED: [string, (m: RunManifest) => unknown][] = [
  ['simulated', (m) => m.simulated],
  ['gpuTypeId', (m) => m.pod.gpuTypeId],
  ['gpuCount', (m) => m.pod.gpuCount],
  ['cloud', (m) => m.pod.cloud],
  ['image', (m) => m.pod.image],
  ['vllm.version', (m) => m.vllm.version],
  ['vllm.reportedVersion', (m) => m.vllm.reportedVersion],
  ['vllm.dtype', (m) => m.vllm.dtype],
  ['vllm.maxModelLen', (m) => m.vllm.maxModelLen],
  ['vllm.maxNumSeqs', (m) => m.vllm.maxNumSeqs],
  ['vllm.maxNumBatchedTokens', (m) => m.vllm.maxNumBatchedTokens],
  ['vllm.enablePrefixCaching', (m) => m.vllm.enablePrefixCaching],
  ['vllm.seed', (m) => m.vllm.seed],
  ['harness.concurrency', (m) => m.harness.concurrency],
  ['harness.baselineSeconds', (m) => m.harness.baselineSeconds],
  ['datasetSha256', (m) => m.datasetSha256],
  ['codecarbon.countryIsoCode', (m) => m.codecarbon.countryIsoCode],
];

export function createResultsActivities(deps: ResultsActivityDeps) {
  return {
    /**
     * Writes the run's manifest next to the transferred files and a checksum file over all of them.
     * Idempotent: rewriting gives the same files for the same input.
     */
    async writeRunManifest(input: WriteRunManifestInput): Promise<WriteRunManifestOutput> {
      const dir = join(deps.resultsDir, input.resultsSubdir);
      const envPath = join(dir, 'environment.json');
      const manifest: RunManifest = {
        ...input.manifest,
        environment: existsSync(envPath) ? readJson(envPath) : null,
      };
      writeAtomic(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);

      let metrics: RunMetricsSummary | null = null;
      const metricsPath = join(dir, 'metrics.json');
      if (existsSync(metricsPath)) {
        const parsed = MetricsSchema.safeParse(readJson(metricsPath));
        if (!parsed.success) throw new HarnessContractError(`metrics.json does not match the harness contract: ${parsed.error.message}`);
        const m = parsed.data;
        metrics = { n: m.n, accuracy: m.accuracy, f1: m.f1, unparseable: m.unparseable, gpuEnergyKwh: m.energy.gpu_kwh };
      }

      const names = readdirSync(dir)
        .filter((f) => f !== CHECKSUM_FILE && !f.endsWith('.tmp') && !f.endsWith('.partial'))
        .sort();
      const lines = await Promise.all(names.map(async (n) => `${await sha256File(join(dir, n))}  ${n}`));
      writeAtomic(join(dir, CHECKSUM_FILE), `${lines.join('\n')}\n`);
      return { checksumFile: join(dir, CHECKSUM_FILE), metrics };
    },

    /** Collects the phase's run manifests and metrics into one summary, flagging controlled variables that differ. */
    async summarizePhase(input: SummarizePhaseInput): Promise<SummarizePhaseOutput> {
      const rows = await Promise.all(
        input.runSubdirs.map(async (sub) => {
          const dir = join(deps.resultsDir, sub);
          const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as RunManifest;
          const metricsPath = join(dir, 'metrics.json');
          const metrics: unknown = existsSync(metricsPath) ? JSON.parse(await readFile(metricsPath, 'utf8')) : null;
          return { dir: relative(deps.resultsDir, dir), manifest, metrics };
        }),
      );
      const inconsistencies: string[] = [];
      for (const [name, get] of CONTROLLED) {
        const values = new Set(rows.map((r) => JSON.stringify(get(r.manifest))));
        if (values.size > 1) inconsistencies.push(`${name} differs across runs: ${[...values].join(' vs ')}`);
      }
      const phaseDir = join(deps.resultsDir, input.study, input.phase);
      mkdirSync(phaseDir, { recursive: true });
      const summaryPath = join(phaseDir, 'summary.json');
      const summary = {
        schemaVersion: 1,
        study: input.study,
        phase: input.phase,
        runs: rows.map((r) => ({
          dir: r.dir,
          model: r.manifest.model.repoId,
          prompt: r.manifest.prompt.name,
          runId: r.manifest.runId,
          simulated: r.manifest.simulated,
          gpu: `${r.manifest.pod.gpuCount}x ${r.manifest.pod.gpuTypeId ?? 'unknown'}`,
          metrics: r.metrics,
        })),
        inconsistencies,
      };
      writeAtomic(summaryPath, `${JSON.stringify(summary, null, 2)}\n`);
      return { summaryPath, runs: rows.length, inconsistencies };
    },
  };
}
