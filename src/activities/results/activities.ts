import { lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import type {
  ManifestHardware,
  RunInterruption,
  RunManifest,
  RunMetricsSummary,
  SummarizePhaseInput,
  SummarizePhaseOutput,
  WriteRunManifestInput,
  WriteRunManifestOutput,
} from './types.js';
import type { z } from 'zod';
import { EnvironmentSchema, HarnessContractError, MetricsSchema } from '../harness/index.js';
import { sha256File } from '../ssh/index.js';
import { TransferLimitError } from './errors.js';
import { LIMIT_ENV, type TransferLimits } from './rules.js';

export const CHECKSUM_FILE = 'checksums.sha256';
export const MANIFEST_FILE = 'manifest.json';

export interface ResultsActivityDeps {
  /** Absolute results root (`results/`). */
  resultsDir: string;
  /** `maxJsonBytes`: the largest harness JSON (written on the pod, so untrusted) the worker parses. */
  transferLimits: Pick<TransferLimits, 'maxJsonBytes'>;
}

function writeAtomic(path: string, content: string) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

/**
 * A harness JSON file from the run folder, or null when there is none. It came from the pod: a plain file within
 * the size limit, or a clear failure naming it, rather than an unbounded read.
 */
function readHarnessJson(path: string, maxBytes: number): unknown {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  const name = basename(path);
  if (!st.isFile()) throw new HarnessContractError(`${name} in ${dirname(path)} is not a regular file`);
  if (st.size > maxBytes) {
    throw new TransferLimitError(
      `${name} in ${dirname(path)} is ${st.size} bytes, over the limit of ${maxBytes} for JSON the worker parses ` +
        `(raise ${LIMIT_ENV.maxJsonBytes})`,
    );
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new HarnessContractError(`${name} in ${dirname(path)} is not valid JSON: ${(err as Error).message}`);
  }
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

/** Versions and GPU from the harness's environment.json; GPU fields stay null (with the harness's note) without one. */
export function hardwareOf(raw: unknown): ManifestHardware {
  const parsed = EnvironmentSchema.safeParse(raw);
  if (!parsed.success)
    throw new HarnessContractError(`environment.json does not match the harness contract: ${parsed.error.message}`);
  const env = parsed.data;
  const gpu = env.gpu ?? null;
  return {
    versions: {
      vllm: env.vllm?.version ?? null,
      vllmPackage: env.vllm_package ?? null,
      torch: env.torch ?? null,
      cudaRuntime: env.cuda_runtime ?? null,
      cudaDriver: gpu?.cuda_driver_version ?? null,
      nvidiaDriver: gpu?.driver_version ?? null,
      codecarbon: env.codecarbon ?? null,
      huggingfaceHub: env.huggingface_hub ?? null,
      hfXet: env.hf_xet ?? null,
      python: env.python ?? null,
    },
    gpu: {
      present: gpu?.present ?? false,
      count: gpu?.count ?? 0,
      name: gpu?.name ?? null,
      memoryTotalMiB: gpu?.memory_total_mib ?? null,
      powerLimitW: gpu?.power_limit_w ?? null,
    },
    note: gpu ? gpu.note : 'environment.json has no GPU summary (an older harness)',
  };
}

const INTERRUPTION_CAUSE: Record<RunInterruption['cause'], string> = {
  'server-gone': 'the model server died',
  'harness-died': 'the harness process died',
  'harness-failed': 'the harness failed',
  'measurement-invalid': 'an energy window went unrecorded',
  'pod-lost': 'the pod was lost',
};

/**
 * Whether the run's energy can be set beside runs measured in one piece: not when it was resumed (several windows,
 * a server restart between them) or when some samples were measured by no window.
 */
export function energyComparability(
  interruptions: RunInterruption[],
  energy: { complete: boolean; attempts?: number | undefined } | null,
): { comparable: boolean; reasons: string[] } {
  const reasons: string[] = interruptions
    .filter((i) => i.policy === 'resume')
    .map(
      (i) =>
        `resumed after ${INTERRUPTION_CAUSE[i.cause]} at ${i.samplesDone ?? '?'}/${i.samplesTotal ?? '?'} samples ` +
        '(interruptionPolicy resume): measured in several windows, not in one piece',
    );
  if (energy === null) reasons.push('no metrics.json: the run has no energy figures');
  else {
    if ((energy.attempts ?? 1) > 1) reasons.push(`measured in ${energy.attempts} harness attempts (resumed)`);
    if (!energy.complete) reasons.push('some samples were measured by no attempt (one died before its CodeCarbon row)');
  }
  return { comparable: reasons.length === 0, reasons };
}

export function createResultsActivities(deps: ResultsActivityDeps) {
  return {
    /**
     * Writes the run's manifest next to the transferred files and a checksum file over all of them.
     * Idempotent: rewriting gives the same files for the same input.
     */
    async writeRunManifest(input: WriteRunManifestInput): Promise<WriteRunManifestOutput> {
      const dir = join(deps.resultsDir, input.resultsSubdir);
      const maxJsonBytes = deps.transferLimits.maxJsonBytes;
      const environment: unknown = readHarnessJson(join(dir, 'environment.json'), maxJsonBytes);

      let metrics: RunMetricsSummary | null = null;
      let energy: z.infer<typeof MetricsSchema>['energy'] | null = null;
      const rawMetrics = readHarnessJson(join(dir, 'metrics.json'), maxJsonBytes);
      if (rawMetrics !== null) {
        const parsed = MetricsSchema.safeParse(rawMetrics);
        if (!parsed.success)
          throw new HarnessContractError(`metrics.json does not match the harness contract: ${parsed.error.message}`);
        const m = parsed.data;
        energy = m.energy;
        metrics = {
          n: m.n,
          accuracy: m.accuracy,
          f1: m.f1,
          unparseable: m.unparseable,
          gpuEnergyKwh: m.energy.gpu_kwh,
        };
      }
      const manifest: RunManifest = {
        ...input.manifest,
        environment,
        hardware: environment === null ? null : hardwareOf(environment),
        energy: energyComparability(input.manifest.interruptions, energy),
      };
      writeAtomic(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);

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
          const metrics = readHarnessJson(join(dir, 'metrics.json'), deps.transferLimits.maxJsonBytes);
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
        costUsd: {
          sessions: input.costs,
          phaseTotal: Math.round(input.costs.reduce((a, c) => a + c.podCostUsd, 0) * 10_000) / 10_000,
        },
      };
      writeAtomic(summaryPath, `${JSON.stringify(summary, null, 2)}\n`);
      return { summaryPath, runs: rows.length, inconsistencies };
    },
  };
}
