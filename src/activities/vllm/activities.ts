// Starts vLLM on the pod and supervises its startup: reuse, replace, read a failed start from its log.
import { heartbeat, log, sleep } from '@temporalio/activity';
import type { StartVllmInput, StartVllmOutput } from './types.js';
import {
  envPrefix,
  findProcesses,
  isAlive,
  killDetached,
  killPids,
  q,
  runChecked,
  startDetached,
  tail,
  touchHeartbeat,
  shellsOver,
  type PodConnector,
} from '../ssh/index.js';
import { vllmServeCommand } from './command.js';
import { ModelDoesNotFitError, VllmStartFailedError } from './errors.js';
import { classifyVllmStartup, doesNotFitMessage } from './log.js';
import { vllmProbe } from './probe.js';

export interface VllmActivityDeps {
  connector: PodConnector;
  pollIntervalMs: number;
}

export function createVllmActivities(deps: VllmActivityDeps) {
  const withShell = shellsOver(deps.connector);
  return {
    /**
     * Ensures vLLM serves the model on the pod's loopback: reuses a healthy server with the same command line, else
     * starts one and waits for `/health`, `/v1/models` and a warm-up request. A failed start is read from its log:
     * the model not fitting fails for good (with vLLM's numbers and a suggestion); GPU memory held by a stale vLLM of
     * this workspace is freed (its processes killed) and the start tried again; anything else is retryable.
     */
    async startVllm(input: StartVllmInput): Promise<StartVllmOutput> {
      const ws = input.endpoint.workspaceDir;
      const v = input.vllm;
      const pidFile = `${ws}/vllm/pid`;
      const logFile = `${ws}/vllm/vllm.log`;
      const { baseUrl, args, env: gpuEnv, commandLine } = vllmServeCommand(input);
      const startedAt = Date.now();
      return withShell(input.endpoint, async (sh) => {
        const probe = vllmProbe(sh, baseUrl);
        const healthy = () => probe.healthy();
        const listsModel = () => probe.listsModel(input.servedModelName);
        const version = () => probe.version();

        const previous = (await sh.exec(`cat ${q(`${ws}/vllm/cmdline`)} 2>/dev/null`)).stdout.trim();
        const alive = (await sh.exec(isAlive(pidFile))).stdout.trim() === 'alive';
        const readMs = async (file: string) =>
          Number((await sh.exec(`cat ${q(`${ws}/vllm/${file}`)} 2>/dev/null`)).stdout.trim()) || null;
        // Our server with these settings: reused when serving, waited for when still loading (an earlier attempt
        // started it; killing it would throw away minutes of weight loading).
        const sameServer = alive && previous === commandLine;
        if (sameServer && (await healthy()) && (await listsModel())) {
          // The load time is the original start's, so a reused server's manifest still says how long loading took.
          const loadTimeMs = (await readMs('load_ms')) ?? 0;
          return { baseUrl, version: await version(), commandLine, loadTimeMs, reused: true, cleanedUpPids: [] };
        }
        const cleanedUpPids: number[] = [];
        /** Kills vLLM processes serving this workspace's models that the pid file lost track of. */
        const killStale = async (why: string, evidence: string) => {
          const pids = (await runChecked(sh, 'find stale vLLM', findProcesses(` serve ${ws}/models/`)))
            .split('\n')
            .map(Number)
            .filter((p) => Number.isInteger(p) && p > 1);
          if (pids.length) {
            log.warn(`${why}: killing stale vLLM processes of this workspace`, { pids, evidence });
            await runChecked(sh, 'kill stale vLLM', killPids(pids));
            cleanedUpPids.push(...pids);
          }
          return pids;
        };
        const portAnswers = () => probe.answers();
        /** Replaces whatever vLLM this workspace runs with a new one (detached); returns when it was started. */
        const launch = async (): Promise<number> => {
          // A server with other settings, or a dead one, is replaced, never silently reused.
          await runChecked(sh, 'stop old vLLM', killDetached(pidFile));
          // Whatever still answers on the port is not the server this step manages: never measure through it.
          if (
            (await portAnswers()) &&
            ((await killStale(`port ${v.port} in use`, baseUrl)).length === 0 || (await portAnswers()))
          ) {
            throw new VllmStartFailedError(
              `port ${v.port} on the pod already answers, and not from a vLLM this workspace started: stop that server or set vllm.port`,
            );
          }
          await runChecked(
            sh,
            'vLLM files',
            `mkdir -p ${q(`${ws}/vllm`)} && rm -f ${q(`${ws}/vllm/load_ms`)} && printf '%s' ${q(commandLine)} > ${q(`${ws}/vllm/cmdline`)} && : > ${q(logFile)}`,
          );
          const launchedAt = Date.now();
          await runChecked(
            sh,
            'start vLLM',
            startDetached({
              command: `${envPrefix({ HF_HUB_OFFLINE: '1', ...gpuEnv })}exec ${args.map(q).join(' ')}`,
              pidFile,
              logFile,
              cwd: ws,
            }),
          );
          await runChecked(sh, 'vLLM start time', `printf '%s' ${launchedAt} > ${q(`${ws}/vllm/started_at_ms`)}`);
          return launchedAt;
        };
        for (let round = 1; ; round++) {
          const attach = round === 1 && sameServer;
          const loadStartedAt = attach ? ((await readMs('started_at_ms')) ?? Date.now()) : await launch();
          if (attach) log.info('vLLM with this command line is still starting; waiting for it', { baseUrl });
          const outcome = await waitForHealth(loadStartedAt);
          if (outcome === 'ready') {
            if (!(await listsModel()))
              throw new VllmStartFailedError(`/v1/models does not list ${input.servedModelName}`);
            const loadTimeMs = Date.now() - loadStartedAt;
            await runChecked(sh, 'vLLM load time', `printf '%s' ${loadTimeMs} > ${q(`${ws}/vllm/load_ms`)}`);
            const warm = await probe.warmUp(input.servedModelName);
            if (warm !== '200') throw new VllmStartFailedError(`warm-up request answered HTTP ${warm || 'nothing'}`);
            return { baseUrl, version: await version(), commandLine, loadTimeMs, reused: false, cleanedUpPids };
          }
          if (outcome.timedOut) {
            await runChecked(sh, 'stop slow vLLM', killDetached(pidFile));
            throw new VllmStartFailedError(
              `vLLM not healthy after ${v.startupTimeoutMs} ms. Log tail:\n${outcome.logTail.slice(-1500)}`,
            );
          }
          const failure = classifyVllmStartup(outcome.logTail);
          if (failure.kind === 'does-not-fit') {
            const gpu = (
              await sh.exec(`nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1`)
            ).stdout.trim();
            throw new ModelDoesNotFitError(
              doesNotFitMessage(failure, {
                servedModelName: input.servedModelName,
                maxModelLen: v.maxModelLen,
                maxNumSeqs: v.maxNumSeqs,
                gpuMemoryUtilization: v.gpuMemoryUtilization,
                tensorParallelSize: input.tensorParallelSize,
                ...(input.weightBytes !== undefined ? { weightBytes: input.weightBytes } : {}),
                gpu: gpu || null,
              }),
              { reason: failure.reason, numbers: failure.numbers },
            );
          }
          // Most often a vLLM of ours that outlived its pid file (an earlier attempt, a crashed worker): only
          // processes serving this workspace's models are ours to kill; other users' GPU jobs are left alone.
          if (
            failure.kind === 'vram-held' &&
            round === 1 &&
            (await killStale('GPU memory held', failure.evidence)).length
          )
            continue;
          if (failure.kind === 'vram-held') {
            const holders = (
              await sh.exec(
                'nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader 2>/dev/null',
              )
            ).stdout.trim();
            throw new VllmStartFailedError(
              `GPU memory is held by another process${cleanedUpPids.length ? ` even after killing stale vLLM ${cleanedUpPids.join(', ')}` : ''}` +
                `${holders ? ` (nvidia-smi: ${holders.replace(/\n/g, '; ')})` : ''}: ${failure.evidence}`,
            );
          }
          throw new VllmStartFailedError(
            `vLLM exited during startup: ${failure.evidence}. Log tail:\n${outcome.logTail.slice(-1500)}`,
          );
        }

        /** Polls until /health answers 200, the process exits, or the startup timeout passes. */
        async function waitForHealth(since: number): Promise<'ready' | { timedOut: boolean; logTail: string }> {
          for (;;) {
            await sleep(Math.min(deps.pollIntervalMs, 2_000));
            heartbeat({ stage: 'loading', elapsedMs: Date.now() - startedAt });
            await sh.exec(touchHeartbeat(ws));
            // Dead first: a /health answer only counts while our own process is alive.
            if ((await sh.exec(isAlive(pidFile))).stdout.trim() === 'dead') {
              // The whole startup's log (emptied at each start): with tensor parallelism the root cause can sit far
              // above the wrapper tracebacks.
              return { timedOut: false, logTail: await runChecked(sh, 'vLLM log', tail(logFile, 3000)) };
            }
            if (await healthy()) return 'ready';
            if (Date.now() - since > v.startupTimeoutMs) {
              return { timedOut: true, logTail: await runChecked(sh, 'vLLM log', tail(logFile, 40)) };
            }
          }
        }
      });
    },
  };
}
