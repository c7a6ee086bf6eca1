// Runs the harness on the pod (detached, re-attachable) and watches it until its progress file says done.
import { heartbeat, log, sleep } from '@temporalio/activity';
import type { InferenceHeartbeat, RunInferenceInput, RunInferenceOutput } from './types.js';
import {
  envPrefix,
  isAlive,
  killDetached,
  parseJson,
  q,
  runChecked,
  startDetached,
  tail,
  touchHeartbeat,
  shellsOver,
  type PodConnector,
} from '../ssh/index.js';
import { ModelServerGoneError, vllmProbe } from '../vllm/index.js';
import { HarnessContractError, HarnessInputError, RunInterruptedError, type RunInterruptionCause } from './errors.js';
import { HarnessProgressSchema, type HarnessProgress } from './schemas.js';

export interface HarnessActivityDeps {
  connector: PodConnector;
  pollIntervalMs: number;
}

export function createHarnessActivities(deps: HarnessActivityDeps) {
  const withShell = shellsOver(deps.connector);
  return {
    /**
     * Ensures the harness run completes: starts it detached, or re-attaches to the one already running (same run
     * id; after a worker restart or an SSH drop), and heartbeats samples done / total and tokens per second until its
     * progress file says done. A model server that dies under the run ends the attempt with ModelServerGoneError
     * (the harness is stopped first, so its energy window is closed); the workflow restarts vLLM and decides.
     */
    async runInference(input: RunInferenceInput): Promise<RunInferenceOutput> {
      const ws = input.endpoint.workspaceDir;
      const runId = input.spec.runId;
      const remoteDir = `${ws}/runs/${runId}`;
      const pidFile = `${remoteDir}/harness.pid`;
      const vllmPidFile = `${ws}/vllm/pid`;
      const specJson = JSON.stringify({ ...input.spec, outputDir: remoteDir }, null, 2);
      const startedAt = Date.now();
      return withShell(input.endpoint, async (sh) => {
        await runChecked(sh, 'run directory', `mkdir -p ${q(remoteDir)}`);
        await sh.writeFile(`${remoteDir}/spec.json`, specJson);
        const SEP = '--8<--';
        /** One round trip: touch the dead-man's switch, read progress, and whether the harness and vLLM live. */
        const poll = async () => {
          const out = await runChecked(
            sh,
            'run progress',
            `${touchHeartbeat(ws)}; cat ${q(`${remoteDir}/progress.json`)} 2>/dev/null; echo ${q(SEP)}; ${isAlive(pidFile)}; ${isAlive(vllmPidFile)}`,
          );
          const [progressText = '', rest = ''] = out.split(SEP);
          const [harness = 'dead', vllm = 'dead'] = rest
            .trim()
            .split('\n')
            .map((l) => l.trim());
          let progress = null;
          if (progressText.trim()) {
            const p = HarnessProgressSchema.safeParse(parseJson(progressText));
            if (!p.success)
              throw new HarnessContractError(`progress.json does not match the harness contract: ${p.error.message}`);
            progress = p.data;
          }
          return { progress, harnessAlive: harness === 'alive', vllmAlive: vllm === 'alive' };
        };
        const serverUp = async () =>
          (await sh.exec(isAlive(vllmPidFile))).stdout.trim() === 'alive' &&
          (await vllmProbe(sh, input.spec.baseUrl).healthy());
        const serverGone = async (progress: HarnessProgress | null, why: string) => {
          // Stop the harness (SIGTERM: it closes its energy window and writes `failed`) so nothing outlives the server.
          await runChecked(sh, 'stop harness', killDetached(pidFile));
          const vllmLog = await runChecked(sh, 'vLLM log', tail(`${ws}/vllm/vllm.log`, 15));
          return new ModelServerGoneError(
            `the model server is gone (${why}) during run ${runId} at ${progress?.done ?? '?'}/${progress?.total ?? '?'} samples. vLLM log tail:\n${vllmLog.slice(-1200)}`,
            { runId, done: progress?.done ?? null, total: progress?.total ?? null },
          );
        };
        // Start unless running (then re-attach); a new process must not read the last one's `failed` as its own.
        const start = () =>
          runChecked(
            sh,
            'start harness',
            `if [ -f ${q(pidFile)} ] && kill -0 "$(cat ${q(pidFile)})" 2>/dev/null; then :; else rm -f ${q(`${remoteDir}/progress.json`)}; fi\n` +
              startDetached({
                command: `${envPrefix({ PYTHONPATH: `${ws}/harness` })}exec python3 -m harness.run --spec ${q(`${remoteDir}/spec.json`)}`,
                pidFile,
                logFile: `${remoteDir}/harness.stdout`,
                cwd: remoteDir,
              }),
          );

        /**
         * The error for a run that ended unfinished: the server's death, refused inputs, or (server fine) an
         * interruption the workflow resolves by the study's policy. Never a silent resume here: that would stitch two
         * measurements into one run.
         */
        const unfinished = async (progress: HarnessProgress | null): Promise<Error> => {
          if (!(await serverUp())) return serverGone(progress, 'not answering /health');
          const failed = progress?.state === 'failed';
          const error = failed ? (progress.error ?? 'no error text') : 'the process is gone without a final state';
          // Exit code 2: the spec the orchestrator wrote is wrong (a bug), or the study's inputs are refused.
          if (error.startsWith('invalid spec')) return new HarnessContractError(`harness run ${runId}: ${error}`);
          if (error.startsWith('invalid input')) return new HarnessInputError(`harness run ${runId}: ${error}`);
          const cause: RunInterruptionCause = !failed
            ? 'harness-died'
            : error.startsWith('MeasurementError')
              ? 'measurement-invalid'
              : 'harness-failed';
          const logTail = await runChecked(sh, 'harness log', tail(`${remoteDir}/harness.log`, 15));
          return new RunInterruptedError(
            `harness run ${runId} ended at ${progress?.done ?? '?'}/${progress?.total ?? '?'} samples (${cause}): ` +
              `${error}. Harness log tail:\n${logTail.slice(-1200)}`,
            { runId, done: progress?.done ?? null, total: progress?.total ?? null, cause },
          );
        };

        let state = await poll();
        let reattached = false;
        if (state.progress?.state !== 'done') {
          // An earlier process of this run ended unfinished: only the workflow may decide to resume it.
          if (!state.harnessAlive && state.progress !== null && !input.resume) throw await unfinished(state.progress);
          if (!state.harnessAlive && !(await serverUp()))
            throw await serverGone(state.progress, 'not serving before the run started');
          const started = (await start()).trim();
          reattached = started.startsWith('running');
          log.info('harness', { runId, state: started, resume: input.resume ?? false });
        }
        for (;;) {
          state = await poll();
          // A harness that just finished exits right after writing `done`: look again before calling it dead.
          if (!state.harnessAlive && state.progress?.state !== 'done') state = await poll();
          const { progress } = state;
          if (progress?.state === 'done') {
            return {
              remoteDir,
              done: progress.done,
              total: progress.total,
              durationMs: Date.now() - startedAt,
              reattached,
              sshReconnects: sh.reconnects,
            };
          }
          if (!state.vllmAlive) throw await serverGone(progress, 'its process exited');
          if (progress?.state === 'failed' || !state.harnessAlive) throw await unfinished(progress);
          const hb: InferenceHeartbeat = {
            stage: progress?.stage ?? 'starting',
            done: progress?.done ?? 0,
            total: progress?.total ?? 0,
            tokensPerS: progress?.tokensPerS ?? null,
          };
          heartbeat(hb);
          await sleep(deps.pollIntervalMs);
        }
      });
    },
  };
}
