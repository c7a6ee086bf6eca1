// Earlier runs of a study, from the results folder: what each measured (tokens, durations, download, vLLM load) and
// the settings the cross-phase check compares. Read tolerantly: a broken run is skipped with a note, never a crash.
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { ConsistencyVariable, RunHistory } from './types.js';

/** As src/activities/results/activities.ts writes it (not imported: that module pulls in the pod activities). */
const MANIFEST_FILE = 'manifest.json';

/** The manifest embeds environment.json, itself capped at 8 MiB by default (TRANSFER_MAX_JSON_BYTES). */
export const DEFAULT_MAX_HISTORY_JSON_BYTES = 16 * 1024 * 1024;

const str = z.string().nullish().catch(null);
const num = z.number().nullish().catch(null);
const bool = z.boolean().nullish().catch(null);

/** The parts of `manifest.json` (RunManifest, src/activities/results/types.ts) the plan reads; the rest may vary. */
const ManifestSchema = z.looseObject({
  study: z.string(),
  phase: z.string(),
  runId: z.string(),
  model: z.looseObject({ repoId: z.string(), thinking: z.boolean().catch(false) }),
  prompt: z.looseObject({ name: z.string(), templateSha256: str, fewShotSha256: str }),
  datasetSha256: str,
  pod: z
    .looseObject({ gpuTypeId: str, gpuCount: z.number().int().positive().catch(1) })
    .nullish()
    .catch(null),
  vllm: z
    .looseObject({
      version: str,
      reportedVersion: str,
      dtype: str,
      maxModelLen: num,
      maxNumSeqs: num,
      maxNumBatchedTokens: num,
      enablePrefixCaching: bool,
      loadTimeMs: num,
    })
    .nullish()
    .catch(null),
  sampling: z.unknown(),
  harness: z.looseObject({ concurrency: num }).nullish().catch(null),
  /** The harness's environment.json as recorded (older manifests have no `hardware`). */
  environment: z.looseObject({ codecarbon: str }).nullish().catch(null),
  hardware: z
    .looseObject({ versions: z.looseObject({ codecarbon: str }).nullish().catch(null) })
    .nullish()
    .catch(null),
  timings: z.record(z.string(), z.unknown()).nullish().catch(null),
  download: z.looseObject({ totalBytes: num, reused: bool }).nullish().catch(null),
});

/** The parts of the harness's `metrics.json` the plan reads. */
const MetricsSchema = z.looseObject({
  n: num,
  tokens: z.looseObject({ prompt: num, completion: num }).nullish().catch(null),
  durations_s: z.looseObject({ inference: num }).nullish().catch(null),
});

type Read = { ok: true; doc: unknown } | { ok: false; why: string };

/** A JSON file: a regular file (links are not followed) of at most `maxBytes`, read from its opened descriptor. */
function readJsonCapped(path: string, maxBytes: number): Read {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, why: code === 'ENOENT' ? 'missing' : code === 'ELOOP' ? 'a link' : `cannot open (${code})` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, why: 'not a regular file' };
    if (st.size > maxBytes) return { ok: false, why: `${st.size} bytes, over the limit of ${maxBytes}` };
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > maxBytes) return { ok: false, why: `over the limit of ${maxBytes} bytes` };
    try {
      return { ok: true, doc: JSON.parse(buf.subarray(0, n).toString('utf8')) };
    } catch {
      return { ok: false, why: 'not valid JSON' };
    }
  } finally {
    closeSync(fd);
  }
}

/** Sub-directories (not links), sorted; none when `dir` cannot be read. */
function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

const issue = (e: z.ZodError) => {
  const i = e.issues[0];
  return i ? `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}` : 'invalid';
};

export interface ReadRunHistoryInput {
  /** The results root (`results/`). */
  resultsDir: string;
  study: string;
  /** Largest manifest.json or metrics.json read; default 16 MiB. */
  maxJsonBytes?: number;
}

export interface ReadRunHistoryOutput {
  /** Every run with a readable manifest, ordered by folder. */
  runs: RunHistory[];
  /** Runs skipped, files unreadable, one line each. */
  notes: string[];
}

/**
 * Every finished run of a study: `<resultsDir>/<study>/<phase>/<model slug>/<prompt>/<runId>/` holding a
 * `manifest.json` (written when the run is done). A run without metrics.json keeps its settings, with null figures.
 */
export function readRunHistory(input: ReadRunHistoryInput): ReadRunHistoryOutput {
  const maxBytes = input.maxJsonBytes ?? DEFAULT_MAX_HISTORY_JSON_BYTES;
  const runs: RunHistory[] = [];
  const notes: string[] = [];
  const studyDir = join(input.resultsDir, input.study);
  for (const phase of subdirs(studyDir))
    for (const model of subdirs(join(studyDir, phase)))
      for (const prompt of subdirs(join(studyDir, phase, model)))
        for (const runId of subdirs(join(studyDir, phase, model, prompt))) {
          const runDir = [input.study, phase, model, prompt, runId].join('/');
          const dir = join(input.resultsDir, runDir);
          const read = readJsonCapped(join(dir, MANIFEST_FILE), maxBytes);
          if (!read.ok) {
            // No manifest: a run that never finished (or an abandoned restart); nothing to learn from.
            if (read.why !== 'missing') notes.push(`${runDir}: skipped: ${MANIFEST_FILE} ${read.why}`);
            continue;
          }
          const parsed = ManifestSchema.safeParse(read.doc);
          if (!parsed.success) {
            notes.push(`${runDir}: skipped: ${MANIFEST_FILE} unreadable (${issue(parsed.error)})`);
            continue;
          }
          const m = parsed.data;
          if (m.study !== input.study || m.phase !== phase) {
            notes.push(`${runDir}: skipped: its manifest is of ${m.study}/${m.phase}, not of this folder`);
            continue;
          }
          runs.push(toHistory(m, runDir, readMetrics(join(dir, 'metrics.json'), maxBytes, runDir, notes)));
        }
  return { runs, notes };
}

function readMetrics(
  path: string,
  maxBytes: number,
  runDir: string,
  notes: string[],
): z.infer<typeof MetricsSchema> | null {
  const read = readJsonCapped(path, maxBytes);
  if (!read.ok) {
    notes.push(`${runDir}: metrics.json ${read.why}: no measured tokens or inference time`);
    return null;
  }
  const parsed = MetricsSchema.safeParse(read.doc);
  if (!parsed.success) {
    notes.push(`${runDir}: metrics.json unreadable (${issue(parsed.error)}): no measured tokens or inference time`);
    return null;
  }
  return parsed.data;
}

function toHistory(
  m: z.infer<typeof ManifestSchema>,
  runDir: string,
  metrics: z.infer<typeof MetricsSchema> | null,
): RunHistory {
  const timing = (key: string) => {
    const v = m.timings?.[key];
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  };
  // Typed by CONSISTENCY_VARIABLES: a new variable fails the type check until it is read here.
  const settings: Record<ConsistencyVariable, unknown> = {
    vllmVersion: m.vllm?.reportedVersion ?? m.vllm?.version ?? null,
    codecarbonVersion: m.hardware?.versions?.codecarbon ?? m.environment?.codecarbon ?? null,
    dtype: m.vllm?.dtype ?? null,
    sampling: m.sampling ?? null,
    concurrency: m.harness?.concurrency ?? null,
    dataset: m.datasetSha256 ?? null,
    templates: { templateSha256: m.prompt.templateSha256 ?? null, fewShotSha256: m.prompt.fewShotSha256 ?? null },
    prefixCaching: m.vllm?.enablePrefixCaching ?? null,
    maxModelLen: m.vllm?.maxModelLen ?? null,
    maxNumSeqs: m.vllm?.maxNumSeqs ?? null,
    maxNumBatchedTokens: m.vllm?.maxNumBatchedTokens ?? null,
  };
  const inferenceS = metrics?.durations_s?.inference ?? null;
  // A download found complete on the volume took no time: it says nothing about the download rate.
  const reused = m.download?.reused === true;
  return {
    phase: m.phase,
    runDir,
    repoId: m.model.repoId,
    thinking: m.model.thinking,
    prompt: m.prompt.name,
    gpuTypeId: m.pod?.gpuTypeId ?? null,
    gpuCount: m.pod?.gpuCount ?? 1,
    samples: metrics?.n ?? timing('samples'),
    completionTokens: metrics?.tokens?.completion ?? null,
    promptTokens: metrics?.tokens?.prompt ?? null,
    inferenceMs: inferenceS === null ? null : Math.round(inferenceS * 1000),
    vllmLoadMs: m.vllm?.loadTimeMs ?? timing('vllmLoadMs'),
    downloadMs: reused ? null : timing('downloadMs'),
    downloadBytes: reused ? null : (m.download?.totalBytes ?? null),
    settings,
  };
}
