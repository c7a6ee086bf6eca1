import { ApplicationFailure, setCurrentDetails } from '@temporalio/workflow';
import type { KeptResults } from '../activities/results/index.js';
import { ErrorTypes } from '../shared/errors.js';
import { call, podStep, quick, teardownStep } from './pod-session/options.js';

export interface FetchKeptResultsInput {
  record: KeptResults;
}
export interface FetchKeptResultsOutput {
  podId: string;
  runs: { prompt: string; resultsSubdir: string; files: number }[];
  podTerminatedAt: string;
}

/**
 * `npm run fetch-results`: brings home the results a session left on a kept (stopped) pod. Starts the pod, waits
 * until SSH works (a fresh host key is pinned: the container restarted), brings each run home with the usual rules,
 * writes its manifest, then terminates the pod and removes the record. If the transfer fails again, the pod is
 * stopped and kept again and the record stays, so the command can be run once more.
 */
export async function fetchKeptResultsWorkflow(input: FetchKeptResultsInput): Promise<FetchKeptResultsOutput> {
  const { record } = input;
  const { podId } = record;
  setCurrentDetails(`starting kept pod ${podId} to bring ${record.runs.map((r) => r.prompt).join(', ')} home`);
  const resumed = await call('resumeKeptPod', quick, `start kept pod ${podId}`, { podId });
  if (!resumed.found) {
    throw ApplicationFailure.create({
      type: ErrorTypes.PodGone,
      nonRetryable: true,
      message:
        `pod ${podId} no longer exists (RunPod removes stopped pods after about a day): the results of ` +
        `${record.runs.map((r) => r.runId).join(', ')} are lost; the record stays for reference`,
    });
  }
  const endpoint = await call(
    'waitForPodReady',
    podStep(20 * 60_000 + 120_000, 3),
    `wait for pod ${podId} to accept SSH`,
    {
      podId,
      timeoutMs: 20 * 60_000,
      defaultWorkspaceDir: record.workspaceDir,
    },
  );
  const runs: FetchKeptResultsOutput['runs'] = [];
  let sessionBytes = 0;
  try {
    for (const run of record.runs) {
      setCurrentDetails(`bringing ${run.prompt} (${run.runId}) home from pod ${podId}`);
      const t = await call('transferResults', podStep(2 * 3_600_000, 5), `bring ${run.prompt} results home over SFTP`, {
        endpoint,
        remoteDir: run.remoteDir,
        resultsSubdir: run.resultsSubdir,
        sessionBytesSoFar: sessionBytes,
      });
      sessionBytes += t.files.reduce((n, f) => n + f.bytes, 0);
      await call('writeRunManifest', quick, `write manifest and checksums for ${run.prompt}`, {
        resultsSubdir: run.resultsSubdir,
        manifest: run.manifest,
      });
      runs.push({ prompt: run.prompt, resultsSubdir: run.resultsSubdir, files: t.files.length });
    }
  } catch (err) {
    // Still not home: keep the pod (stopped) and the record for another try.
    await call('keepPod', teardownStep, `stop and keep pod ${podId} again`, { podId, reason: String(err) });
    throw err;
  }
  const t = await call('terminatePod', teardownStep, `terminate pod ${podId}: its results are home`, { podId });
  await call('removeKeptResults', quick, 'remove the kept-pod record', { study: record.study, podId });
  setCurrentDetails(`results of pod ${podId} are home; pod terminated`);
  return { podId, runs, podTerminatedAt: t.terminatedAt };
}
