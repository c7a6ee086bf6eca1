// The record of results left on a kept pod: written on the worker when a transfer gives up, read by
// `npm run fetch-results` (which hands it to fetchKeptResultsWorkflow), removed once the results are home.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { KeptResults, RecordKeptResultsOutput, RemoveKeptResultsInput, RunManifest } from './types.js';

export const KEPT_DIR = 'kept-pods';

const KeptResultsSchema = z.object({
  schemaVersion: z.literal(1),
  study: z.string().min(1),
  phaseId: z.string().min(1),
  model: z.string().min(1),
  podId: z.string().regex(/^[A-Za-z0-9_-]+$/),
  keptName: z.string().nullable(),
  reason: z.string(),
  keptAt: z.string(),
  workspaceDir: z.string().min(1),
  runs: z.array(
    z.object({
      prompt: z.string(),
      runId: z.string(),
      remoteDir: z.string(),
      resultsSubdir: z.string(),
      // Written by this project's own worker: checked for shape where it matters, kept whole.
      manifest: z.looseObject({ runId: z.string(), study: z.string() }).transform((m) => m as unknown as RunManifest),
    }),
  ),
});

/** `<resultsDir>/<study>/kept-pods/<podId>.json`. */
export function keptResultsPath(resultsDir: string, study: string, podId: string): string {
  return join(resultsDir, study, KEPT_DIR, `${podId}.json`);
}

/** Reads and checks a kept-pod record; throws with the file named when it is not one. */
export function readKeptResults(path: string): KeptResults {
  const parsed = KeptResultsSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path} is not a kept-pod record: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Every kept-pod record under the results folder, as `{ path, record }`, for any study. */
export function findKeptResults(resultsDir: string): { path: string; record: KeptResults }[] {
  if (!existsSync(resultsDir)) return [];
  return readdirSync(resultsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(resultsDir, d.name, KEPT_DIR)))
    .flatMap((d) =>
      readdirSync(join(resultsDir, d.name, KEPT_DIR))
        .filter((f) => f.endsWith('.json'))
        .map((f) => join(resultsDir, d.name, KEPT_DIR, f)),
    )
    .map((path) => ({ path, record: readKeptResults(path) }));
}

export function createKeptResultsActivities(deps: { resultsDir: string }) {
  return {
    /** Writes the record (atomically; the same input gives the same file), so the results can be fetched later. */
    recordKeptResults(input: KeptResults): Promise<RecordKeptResultsOutput> {
      const record = KeptResultsSchema.parse(input);
      const path = keptResultsPath(deps.resultsDir, record.study, record.podId);
      mkdirSync(join(deps.resultsDir, record.study, KEPT_DIR), { recursive: true });
      writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
      renameSync(`${path}.tmp`, path);
      return Promise.resolve({ path });
    },

    /** Removes the record once its results are home. Idempotent. */
    removeKeptResults(input: RemoveKeptResultsInput): Promise<{ removed: boolean }> {
      const path = keptResultsPath(deps.resultsDir, input.study, input.podId);
      const existed = existsSync(path);
      rmSync(path, { force: true });
      return Promise.resolve({ removed: existed });
    },
  };
}
