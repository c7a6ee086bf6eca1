import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { activityInfo, cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { modelSlug, WATCHDOG_TOUCH_INTERVAL_MS } from '../../shared/constants.js';
import type {
  CollectLogsInput,
  CollectLogsOutput,
  DownloadHeartbeat,
  DownloadModelInput,
  DownloadModelOutput,
  InferenceHeartbeat,
  PodEndpoint,
  PreparePodInput,
  PreparePodOutput,
  RunInferenceInput,
  RunInferenceOutput,
  StartVllmInput,
  StartVllmOutput,
  StopPodWorkInput,
  StopPodWorkOutput,
  TransferResultsInput,
  TransferResultsOutput,
} from '../../shared/types.js';
import { withActivityShell, runChecked } from './activity-shell.js';
import type { PodConnector, PodShell, ReconnectingPodShell } from './client.js';
import {
  DownloadFailedError,
  DownloadVerificationError,
  HarnessContractError,
  HarnessInputError,
  ModelDoesNotFitError,
  ModelServerGoneError,
  RemoteCommandError,
  RunInterruptedError,
  SshError,
  TransferChecksumError,
  TransferLimitError,
  UnsafePodFileError,
  type RunInterruptionCause,
  VllmStartFailedError,
} from './errors.js';
import { envPrefix, findProcesses, isAlive, killDetached, killPids, q, startDetached, tail } from './remote.js';
import {
  commitDownload,
  describeKind,
  freshTemp,
  isSafeName,
  LIMIT_ENV,
  listProblems,
  localRunDir,
  localTarget,
  lstatOrNull,
  shown,
  type TransferLimits,
} from './transfer.js';
import { ensureWatchdog } from './watchdog.js';
import { resolveStudyFiles } from '../../study/files.js';
import { StudyInvalidError } from '../../study/load.js';
import { DEFAULT_RUNPOD_BASE_URL } from '../runpod/index.js';
import {
  CompleteMarkerSchema,
  HarnessProgressSchema,
  ModelsListSchema,
  VerifyResultSchema,
  VllmVersionSchema,
  XetFallbackSchema,
  type HarnessProgress,
} from './schemas.js';
import { classifyVllmStartup, doesNotFitMessage } from './vllm-log.js';

export interface PodActivityDeps {
  connector: PodConnector;
  /** Study-relative paths (dataset, prompts) resolve against this. */
  projectRoot: string;
  /** Local folder holding the harness package (`pod/harness`). */
  harnessDir: string;
  /** Absolute local results root; activities write below it. */
  resultsDir: string;
  hfEndpoint?: string;
  /** Reaches `hf download` through a mode-600 file on the pod, never a command line. */
  hfToken?: string;
  /** What may be brought home from a pod (bytes per file, files per run, bytes per session). */
  transferLimits: TransferLimits;
  pollIntervalMs: number;
  downloadStallTimeoutMs: number;
  /** RunPod REST v2 base URL a pod's watchdog calls to stop itself. */
  runpodBaseUrl?: string;
  /** The account key; copied onto a pod only when its study opts in (watchdog `selfStop: account-key-opt-in`). */
  runpodApiKey?: string;
}

/**
 * Xet/CAS failures users report (reference/pod-side.md 1.3), as an extended regex for `grep -E` over the download
 * log: any of them switches the download to plain HTTP at once instead of waiting for the stall timeout.
 */
export const XET_ERROR_RE = [
  'CAS service error',
  'CAS Client Error',
  'Data processing error',
  'single flight error',
  'xethub\\.hf\\.co',
  'cdn\\.hf\\.co/xorbs',
].join('|');

/** Verification passes per attempt: each deletes the files it rejects and the next download fetches them again. */
const VERIFY_PASSES = 3;

/** The harness's pid and atomic-write temp files (`.metrics.json.123.tmp`): expected in a run folder, never brought home. */
const SCRATCH_RE = /^\.?[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(pid|tmp)$/;

/** Pod folders (below the workspace) whose logs collectLogs brings home. */
const LOG_DIRS = ['vllm', 'models'] as const;

export function createPodActivities(deps: PodActivityDeps) {
  /**
   * The study's local files as they may be uploaded: inside the project after symlinks, regular files. The phase
   * checked them before reserving; checked again here because a pod session can be started on its own.
   */
  const studyFiles = (study: Pick<PreparePodInput, 'datasetPath' | 'prompts'>) => {
    const { files, problems } = resolveStudyFiles({ study, projectRoot: deps.projectRoot });
    if (problems.length) throw new StudyInvalidError('the workflow input', problems);
    const byPath = new Map(files.map((f) => [f.path, f.realPath]));
    return (p: string) => byPath.get(p) ?? '';
  };

  /** One SSH session for an activity (src/activities/pod/activity-shell.ts). */
  function withShell<T>(endpoint: PodEndpoint, fn: (sh: ReconnectingPodShell) => Promise<T>): Promise<T> {
    return withActivityShell({ connector: deps.connector, endpoint, fn });
  }

  function withShellCleanup<T>(
    endpoint: PodEndpoint,
    cleanup: ((sh: PodShell) => Promise<unknown>) | undefined,
    fn: (sh: ReconnectingPodShell) => Promise<T>,
  ): Promise<T> {
    return withActivityShell({ connector: deps.connector, endpoint, fn, ...(cleanup ? { cleanup } : {}) });
  }

  const run = runChecked;

  /** The orchestrator's touch on the pod's dead-man's-switch file, done on every poll. */
  const touch = (ws: string) => `touch ${q(`${ws}/heartbeat`)}`;

  async function remoteSha256(sh: PodShell, paths: string[]): Promise<Map<string, string>> {
    const out = await run(sh, 'checksum', `sha256sum ${paths.map(q).join(' ')} 2>/dev/null || true`);
    const m = new Map<string, string>();
    for (const line of out.split('\n')) {
      const match = /^([0-9a-f]{64})\s+\*?(.+)$/.exec(line.trim());
      if (match?.[1] && match[2]) m.set(match[2], match[1]);
    }
    return m;
  }

  /** Uploads only files whose remote checksum differs: retrying prepare is cheap. */
  async function ensureUploaded(sh: PodShell, files: { localPath: string; remotePath: string }[]) {
    const hashes = await Promise.all(files.map((f) => sha256File(f.localPath)));
    const remote = await remoteSha256(
      sh,
      files.map((f) => f.remotePath),
    );
    for (const [i, f] of files.entries()) {
      if (remote.get(f.remotePath) !== hashes[i]) await sh.putFile(f.localPath, f.remotePath);
    }
    return hashes;
  }

  /** Installs the pinned vLLM when the image has none or another version; returns what `vllm --version` says. */
  async function ensureVllmVersion(sh: PodShell, want: string): Promise<string> {
    const installed = async () =>
      (await sh.exec('vllm --version 2>/dev/null | tail -n 1', { timeoutMs: 120_000 })).stdout.trim();
    let have = await installed();
    if (sameRelease(have, want)) return have;
    log.info('installing vLLM on the pod', { have: have || 'none', want });
    await run(sh, 'pip install vllm', `python3 -m pip install -q ${q(`vllm==${want}`)}`, 45 * 60_000);
    have = await installed();
    if (!sameRelease(have, want))
      throw new RemoteCommandError('vLLM version check', 1, `wanted ${want}, the pod has ${have || 'none'}`);
    return have;
  }

  /** What a pod path is by SFTP lstat (never followed), with a reason for anything but a regular file. */
  async function podFileKind(
    sh: PodShell,
    path: string,
  ): Promise<{ kind: 'file'; bytes: number } | { kind: 'refused'; why: string }> {
    try {
      const st = await sh.lstat(path);
      return st.kind === 'file' ? { kind: 'file', bytes: st.bytes } : { kind: 'refused', why: describeKind(st.kind) };
    } catch (err) {
      // Listed but not there to SFTP: the listing does not describe the folder.
      if (err instanceof SshError && err.kind === 'sftp')
        return { kind: 'refused', why: `listed but not found (${err.message})` };
      throw err;
    }
  }

  return {
    /** Uploads the harness, dataset and prompts; ensures the pinned harness requirements and vLLM version. */
    async preparePod(input: PreparePodInput): Promise<PreparePodOutput> {
      const ws = input.endpoint.workspaceDir;
      const remote = {
        harnessDir: `${ws}/harness`,
        datasetPath: `${ws}/data/dataset.jsonl`,
        promptsDir: `${ws}/prompts`,
      };
      const local = studyFiles(input);
      return withShell(input.endpoint, async (sh) => {
        await run(
          sh,
          'prepare directories',
          `mkdir -p ${[`${remote.harnessDir}/harness`, `${ws}/data`, remote.promptsDir, `${ws}/runs`, `${ws}/models`, `${ws}/vllm`].map(q).join(' ')} && ${touch(ws)}`,
        );
        const harnessFiles = readdirSync(deps.harnessDir)
          .filter((f) => f.endsWith('.py'))
          .map((f) => ({ localPath: join(deps.harnessDir, f), remotePath: `${remote.harnessDir}/harness/${f}` }));
        const requirements = resolve(deps.harnessDir, '..', 'requirements.txt');
        await ensureUploaded(sh, [
          ...harnessFiles,
          { localPath: requirements, remotePath: `${remote.harnessDir}/requirements.txt` },
        ]);

        const promptFiles = input.prompts.map((p) => ({
          localPath: local(p.templatePath),
          remotePath: `${remote.promptsDir}/${p.name}.txt`,
        }));
        const fewShot = input.prompts
          .filter((p) => p.fewShotExamplesPath)
          .map((p) => ({
            name: p.name,
            localPath: local(p.fewShotExamplesPath ?? ''),
            remotePath: `${remote.promptsDir}/${p.name}.examples.jsonl`,
          }));
        const [datasetSha256 = '', ...rest] = await ensureUploaded(sh, [
          { localPath: local(input.datasetPath), remotePath: remote.datasetPath },
          ...promptFiles,
          ...fewShot,
        ]);
        const promptSha256 = Object.fromEntries(input.prompts.map((p, i) => [p.name, rest[i] ?? '']));
        const fewShotSha256 = Object.fromEntries(fewShot.map((f, i) => [f.name, rest[promptFiles.length + i] ?? '']));

        // The harness needs CodeCarbon 2.7.1 exactly; install the pinned requirements when the image lacks them.
        const check = `python3 -c "import codecarbon, huggingface_hub, sys; assert codecarbon.__version__ == '2.7.1', codecarbon.__version__; print(sys.version.split()[0])"`;
        let probe = await sh.exec(check, { timeoutMs: 60_000 });
        if (probe.code !== 0) {
          log.info('installing harness requirements on the pod', { detail: probe.stderr.slice(-300) });
          await run(
            sh,
            'pip install',
            `python3 -m pip install -q -r ${q(`${remote.harnessDir}/requirements.txt`)}`,
            20 * 60_000,
          );
          probe = await sh.exec(check, { timeoutMs: 60_000 });
          if (probe.code !== 0)
            throw new RemoteCommandError('harness requirements check', probe.code, probe.stderr.slice(-1000));
        }
        const vllmVersion = await ensureVllmVersion(sh, input.vllmVersion);
        // Last, after the installs (which run long without touching the heartbeat): the pod's dead-man's switch.
        const watchdog = input.watchdog
          ? await ensureWatchdog(sh, {
              ws,
              settings: input.watchdog,
              scriptPath: resolve(deps.harnessDir, '..', 'watchdog.sh'),
              apiBaseUrl: deps.runpodBaseUrl ?? DEFAULT_RUNPOD_BASE_URL,
              accountApiKey: deps.runpodApiKey,
            })
          : undefined;
        if (watchdog) log.info('pod watchdog', { ...watchdog });
        return {
          datasetSha256,
          promptSha256,
          fewShotSha256,
          remote,
          pythonVersion: probe.stdout.trim(),
          vllmVersion,
          ...(watchdog ? { watchdog } : {}),
        };
      });
    },

    /**
     * Ensures the model is on the pod volume, verified against the Hub's metadata (fetched once by the workflow).
     * Runs `hf download` pinned to the commit, detached, and watches bytes on disk: a transfer that writes nothing
     * for the stall timeout, or whose log shows a known Xet/CAS error, is killed and resumed into the same directory
     * with HF_HUB_DISABLE_XET=1 (finished files are kept). Then verification deletes bad files and another pass
     * fetches them, before `.complete` is written. Re-attaches to a download already running.
     */
    async downloadModel(input: DownloadModelInput): Promise<DownloadModelOutput> {
      const ws = input.endpoint.workspaceDir;
      const expected = input.expected;
      const modelDir = `${ws}/models/${modelSlug(input.repoId)}`;
      const files = {
        pid: `${modelDir}.download.pid`,
        log: `${modelDir}.download.log`,
        status: `${modelDir}.download.status`,
        // Survives the activity: a retry keeps downloading with Xet off once it has been turned off.
        noXet: `${modelDir}.download.no-xet`,
        expected: `${modelDir}.expected.json`,
        // Mode 600, read into the detached process's environment and deleted by it at once (see `command`).
        token: `${modelDir}.download.token`,
      };
      const useToken = deps.hfToken !== undefined;
      const dropToken = (sh: PodShell) => sh.exec(`rm -f ${q(files.token)}`);
      const stallTimeoutMs = input.stallTimeoutMs ?? deps.downloadStallTimeoutMs;
      const startedAt = Date.now();
      // Every exit (done, failed, cancelled): no token file is left by a process that never read it.
      return withShellCleanup(input.endpoint, useToken ? dropToken : undefined, async (sh) => {
        const marker = parseMarker((await sh.exec(`cat ${q(`${modelDir}/.complete`)} 2>/dev/null`)).stdout);
        if (marker && marker.commitSha === expected.commitSha && (!input.verifySha256 || marker.sha256Verified)) {
          return {
            modelDir,
            commitSha: marker.commitSha,
            files: marker.files,
            totalBytes: sumBytes(marker.files),
            durationMs: 0,
            reused: true,
            usedXetFallback: false,
            xetFallback: null,
            repaired: [],
            sha256Verified: marker.sha256Verified ?? false,
            sshReconnects: sh.reconnects,
          };
        }
        await run(sh, 'download directory', `mkdir -p ${q(modelDir)} && ${touch(ws)}`);
        await sh.writeFile(
          files.expected,
          JSON.stringify({
            repo: input.repoId,
            revision: input.revision,
            commitSha: expected.commitSha,
            files: expected.files,
          }),
        );
        const details = activityInfo().heartbeatDetails as Partial<DownloadHeartbeat> | undefined;
        // An earlier attempt's switch to plain HTTP (its reason, as JSON), kept on the pod.
        let xetFallback = parseXetFallback((await sh.exec(`cat ${q(files.noXet)} 2>/dev/null`)).stdout);
        let disableXet = (details?.disableXet ?? false) || xetFallback !== null;
        const repaired: string[] = [];

        const command = () => {
          const env = envPrefix({
            HF_HOME: `${ws}/hf`,
            HF_ENDPOINT: deps.hfEndpoint,
            HF_HUB_DISABLE_XET: disableXet ? '1' : undefined,
            HF_HUB_DOWNLOAD_TIMEOUT: '60',
            HF_HUB_DISABLE_UPDATE_CHECK: '1',
          });
          // Pinned to the commit the metadata came from, so the files are the ones verification expects.
          const hf = `${env}hf download ${q(input.repoId)} --revision ${q(expected.commitSha)} --local-dir ${q(modelDir)}`;
          // The token goes from its file into the environment, never into an argument list (`ps` shows those to
          // everyone on the pod), and the file goes at once.
          const token = useToken
            ? `HF_TOKEN="$(cat ${q(files.token)} 2>/dev/null)"; rm -f ${q(files.token)}; export HF_TOKEN; `
            : '';
          return `echo "--- hf download, Xet ${disableXet ? 'off' : 'on'}, $(date -u +%FT%TZ)"; ${token}${hf}; echo "exit=$?" >> ${q(files.status)}`;
        };
        /** Written over SFTP into a file created mode 600: the token appears in no command line. */
        const writeToken = async () => {
          if (deps.hfToken === undefined) return;
          await run(sh, 'token file', `umask 077 && rm -f ${q(files.token)} && : > ${q(files.token)}`);
          await sh.writeFile(files.token, deps.hfToken);
        };
        // Start unless one is running (then re-attach, and the token file just written is not needed); a stale
        // status file belongs to a finished earlier run.
        const start = async () => {
          await writeToken();
          const running = useToken ? `rm -f ${q(files.token)}` : ':';
          return run(
            sh,
            'start download',
            `if [ -f ${q(files.pid)} ] && kill -0 "$(cat ${q(files.pid)})" 2>/dev/null; then ${running}; else rm -f ${q(files.status)}; fi\n` +
              startDetached({ command: command(), pidFile: files.pid, logFile: files.log, cwd: ws }),
          );
        };
        const fallBack = async (reason: 'stall' | 'xet-error', atBytes: number, detail: string) => {
          log.warn('download: switching to HF_HUB_DISABLE_XET=1', { repoId: input.repoId, reason, atBytes, detail });
          await run(sh, 'stop download', killDetached(files.pid));
          if (useToken) await dropToken(sh); // a process killed before it read the file
          // Finished files stay; partial ones go: hf-xet may have written their ranges out of order, and the HTTP
          // path would append to such a file from its apparent size (a file of the right size with holes in it).
          await run(
            sh,
            'drop partial files',
            `find ${q(`${modelDir}/.cache/huggingface/download`)} -name '*.incomplete' -type f -delete 2>/dev/null; true`,
          );
          xetFallback = { reason, atBytes, detail };
          await sh.writeFile(files.noXet, JSON.stringify(xetFallback));
          disableXet = true;
          await start();
        };

        /** One `hf download` pass, watched until it exits 0 (switching Xet off on a stall or a Xet error). */
        const downloadPass = async () => {
          await start();
          let lastSizes = '';
          let lastGrowthAt = Date.now();
          for (;;) {
            const state = await run(
              sh,
              'download progress',
              [
                // Apparent size (progress) and allocated bytes: a preallocated file has its full apparent size
                // at once, so growth of either counts as progress.
                `${touch(ws)}; echo "$(du -sb ${q(modelDir)} | cut -f1) $(du -sB1 ${q(modelDir)} | cut -f1)"`,
                isAlive(files.pid),
                // Exactly one line each, empty when there is nothing to say.
                `echo "$(tail -n 1 ${q(files.status)} 2>/dev/null)"`,
                disableXet
                  ? 'echo'
                  : `echo "$(grep -a -o -m 1 -E ${q(XET_ERROR_RE)} ${q(files.log)} 2>/dev/null | head -n 1)"`,
              ].join('\n'),
            );
            const [bytesLine = '0', alive = 'dead', status = '', xetError = ''] = state
              .split('\n')
              .map((l) => l.trim());
            const [apparent = '0', allocated = '0'] = bytesLine.split(' ');
            const bytes = Number(apparent) || 0;
            const sizes = `${bytes} ${Number(allocated) || 0}`;
            if (sizes !== lastSizes) {
              lastSizes = sizes;
              lastGrowthAt = Date.now();
            }
            const hb: DownloadHeartbeat = {
              stage: 'downloading',
              bytesDone: bytes,
              totalBytes: expected.totalBytes,
              disableXet,
            };
            heartbeat(hb);
            if (xetError) {
              // A known Xet/CAS failure (pod-side.md 1.3): waiting for the stall timeout would only lose time.
              await fallBack('xet-error', bytes, xetError);
              lastGrowthAt = Date.now();
            } else if (alive === 'dead') {
              if (status === 'exit=0') return;
              const logTail = await run(sh, 'download log', tail(files.log, 30));
              throw new DownloadFailedError(`hf download exited (${status || 'no status'}): ${logTail.slice(-1500)}`);
            } else if (Date.now() - lastGrowthAt > stallTimeoutMs) {
              if (disableXet) {
                // Stalled over plain HTTP as well: let the retry (with backoff) resume it; finished files stay.
                await run(sh, 'stop stalled download', killDetached(files.pid));
                throw new DownloadFailedError(
                  `download stalled at ${bytes} bytes for ${stallTimeoutMs} ms with Xet off`,
                );
              }
              await fallBack('stall', bytes, `no bytes written for ${stallTimeoutMs} ms at ${bytes} bytes`);
              lastGrowthAt = Date.now();
            }
            await sleep(deps.pollIntervalMs);
          }
        };

        const verify = async () => {
          const cmd =
            `${envPrefix({ PYTHONPATH: `${ws}/harness` })}python3 -m harness.verify_model --model-dir ${q(modelDir)} ` +
            `--expected ${q(files.expected)}${input.verifySha256 ? ' --sha256' : ''}`;
          // Hashing tens of GB takes minutes: keep Temporal and the pod's watchdog informed while it runs.
          const hb: DownloadHeartbeat = {
            stage: 'verifying',
            bytesDone: expected.totalBytes,
            totalBytes: expected.totalBytes,
            disableXet,
          };
          heartbeat(hb);
          const ticker = setInterval(() => {
            heartbeat(hb);
            sh.exec(touch(ws)).catch(() => undefined);
          }, WATCHDOG_TOUCH_INTERVAL_MS);
          try {
            const v = await sh.exec(cmd, { timeoutMs: 3 * 3_600_000, signal: cancellationSignal() });
            const parsed = VerifyResultSchema.safeParse(safeJson(v.stdout.trim().split('\n').pop() ?? ''));
            if (!parsed.success)
              throw new RemoteCommandError('verify model', v.code, (v.stderr || v.stdout).slice(-1500));
            return parsed.data;
          } finally {
            clearInterval(ticker);
          }
        };

        for (let pass = 1; ; pass++) {
          await downloadPass();
          const result = await verify();
          if (result.ok) {
            return {
              modelDir,
              commitSha: result.commitSha,
              files: result.files,
              totalBytes: sumBytes(result.files),
              durationMs: Date.now() - startedAt,
              reused: false,
              usedXetFallback: disableXet,
              xetFallback,
              repaired,
              sha256Verified: result.sha256Verified,
              sshReconnects: sh.reconnects,
            };
          }
          repaired.push(...result.problems);
          log.warn('download failed verification; fetching the bad files again', { pass, problems: result.problems });
          if (pass >= VERIFY_PASSES) {
            // The verifier deleted what it could not accept; the activity's retry downloads those files again.
            throw new DownloadVerificationError(
              `model ${input.repoId} failed verification ${pass} times: ${result.problems.join('; ')}`,
            );
          }
        }
      });
    },

    /**
     * Ensures vLLM serves the model on the pod's loopback: reuses a healthy server with the same command line, else
     * starts one and waits for `/health`, `/v1/models` and a warm-up request. A failed start is read from its log:
     * the model not fitting fails for good (with vLLM's numbers and a suggestion); GPU memory held by a stale vLLM of
     * this workspace is freed (its processes killed) and the start tried again; anything else is retryable.
     */
    async startVllm(input: StartVllmInput): Promise<StartVllmOutput> {
      const ws = input.endpoint.workspaceDir;
      const v = input.vllm;
      const baseUrl = `http://127.0.0.1:${v.port}`;
      const pidFile = `${ws}/vllm/pid`;
      const logFile = `${ws}/vllm/vllm.log`;
      const args = [
        'vllm',
        'serve',
        input.modelDir,
        '--served-model-name',
        input.servedModelName,
        '--host',
        '127.0.0.1',
        '--port',
        String(v.port),
        '--dtype',
        v.dtype,
        '--max-model-len',
        String(v.maxModelLen),
        '--max-num-seqs',
        String(v.maxNumSeqs),
        '--max-num-batched-tokens',
        String(v.maxNumBatchedTokens),
        '--seed',
        String(v.seed),
        '--gpu-memory-utilization',
        String(v.gpuMemoryUtilization),
        '--tensor-parallel-size',
        String(input.tensorParallelSize),
        v.enablePrefixCaching ? '--enable-prefix-caching' : '--no-enable-prefix-caching',
        '--generation-config',
        'vllm',
        ...(input.reasoningParser ? ['--reasoning-parser', input.reasoningParser] : []),
      ];
      // Only the run's GPUs on a shared server, numbered as nvidia-smi and NVML number them (CUDA's own order differs).
      const gpuEnv: Record<string, string> = input.gpuIndices?.length
        ? { CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: input.gpuIndices.join(',') }
        : {};
      // Sandbox only: how the simulated vLLM answers (part of the recorded command line, so a manifest shows it).
      if (input.simulatedAnswers) gpuEnv.VLLM_SIM_ANSWERS = JSON.stringify(input.simulatedAnswers);
      // The exact command, environment that selects the GPUs included: recorded, and compared before reusing a server.
      const commandLine = `${envPrefix(gpuEnv)}${args.map(q).join(' ')}`;
      const startedAt = Date.now();
      return withShell(input.endpoint, async (sh) => {
        const curl = (path: string) => `curl -s -m 10 ${q(`${baseUrl}${path}`)}`;
        const healthy = async () =>
          (await sh.exec(`curl -s -o /dev/null -w '%{http_code}' -m 5 ${q(`${baseUrl}/health`)}`)).stdout.trim() ===
          '200';
        const listsModel = async () => {
          const r = ModelsListSchema.safeParse(safeJson((await sh.exec(curl('/v1/models'))).stdout));
          return r.success && r.data.data.some((m) => m.id === input.servedModelName);
        };
        const version = async () =>
          VllmVersionSchema.safeParse(safeJson((await sh.exec(curl('/version'))).stdout)).data?.version ?? 'unknown';

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
          const pids = (await run(sh, 'find stale vLLM', findProcesses(` serve ${ws}/models/`)))
            .split('\n')
            .map(Number)
            .filter((p) => Number.isInteger(p) && p > 1);
          if (pids.length) {
            log.warn(`${why}: killing stale vLLM processes of this workspace`, { pids, evidence });
            await run(sh, 'kill stale vLLM', killPids(pids));
            cleanedUpPids.push(...pids);
          }
          return pids;
        };
        const portAnswers = async () =>
          (await sh.exec(`curl -s -o /dev/null -w '%{http_code}' -m 5 ${q(`${baseUrl}/health`)}`)).stdout.trim() !==
          '000';
        /** Replaces whatever vLLM this workspace runs with a new one (detached); returns when it was started. */
        const launch = async (): Promise<number> => {
          // A server with other settings, or a dead one, is replaced, never silently reused.
          await run(sh, 'stop old vLLM', killDetached(pidFile));
          // Whatever still answers on the port is not the server this step manages: never measure through it.
          if (
            (await portAnswers()) &&
            ((await killStale(`port ${v.port} in use`, baseUrl)).length === 0 || (await portAnswers()))
          ) {
            throw new VllmStartFailedError(
              `port ${v.port} on the pod already answers, and not from a vLLM this workspace started: stop that server or set vllm.port`,
            );
          }
          await run(
            sh,
            'vLLM files',
            `mkdir -p ${q(`${ws}/vllm`)} && rm -f ${q(`${ws}/vllm/load_ms`)} && printf '%s' ${q(commandLine)} > ${q(`${ws}/vllm/cmdline`)} && : > ${q(logFile)}`,
          );
          const launchedAt = Date.now();
          await run(
            sh,
            'start vLLM',
            startDetached({
              command: `${envPrefix({ HF_HUB_OFFLINE: '1', ...gpuEnv })}exec ${args.map(q).join(' ')}`,
              pidFile,
              logFile,
              cwd: ws,
            }),
          );
          await run(sh, 'vLLM start time', `printf '%s' ${launchedAt} > ${q(`${ws}/vllm/started_at_ms`)}`);
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
            await run(sh, 'vLLM load time', `printf '%s' ${loadTimeMs} > ${q(`${ws}/vllm/load_ms`)}`);
            const warm = await sh.exec(
              `curl -s -m 120 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d ${q(JSON.stringify({ model: input.servedModelName, messages: [{ role: 'user', content: 'Say OK.' }], max_tokens: 8, temperature: 0 }))} ${q(`${baseUrl}/v1/chat/completions`)}`,
            );
            if (warm.stdout.trim() !== '200')
              throw new VllmStartFailedError(`warm-up request answered HTTP ${warm.stdout.trim() || 'nothing'}`);
            return { baseUrl, version: await version(), commandLine, loadTimeMs, reused: false, cleanedUpPids };
          }
          if (outcome.timedOut) {
            await run(sh, 'stop slow vLLM', killDetached(pidFile));
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
            await sh.exec(touch(ws));
            // Dead first: a /health answer only counts while our own process is alive.
            if ((await sh.exec(isAlive(pidFile))).stdout.trim() === 'dead') {
              // The whole startup's log (emptied at each start): with tensor parallelism the root cause can sit far
              // above the wrapper tracebacks.
              return { timedOut: false, logTail: await run(sh, 'vLLM log', tail(logFile, 3000)) };
            }
            if (await healthy()) return 'ready';
            if (Date.now() - since > v.startupTimeoutMs) {
              return { timedOut: true, logTail: await run(sh, 'vLLM log', tail(logFile, 40)) };
            }
          }
        }
      });
    },

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
        await run(sh, 'run directory', `mkdir -p ${q(remoteDir)}`);
        await sh.writeFile(`${remoteDir}/spec.json`, specJson);
        const SEP = '--8<--';
        /** One round trip: touch the dead-man's switch, read progress, and whether the harness and vLLM live. */
        const poll = async () => {
          const out = await run(
            sh,
            'run progress',
            `${touch(ws)}; cat ${q(`${remoteDir}/progress.json`)} 2>/dev/null; echo ${q(SEP)}; ${isAlive(pidFile)}; ${isAlive(vllmPidFile)}`,
          );
          const [progressText = '', rest = ''] = out.split(SEP);
          const [harness = 'dead', vllm = 'dead'] = rest
            .trim()
            .split('\n')
            .map((l) => l.trim());
          let progress = null;
          if (progressText.trim()) {
            const p = HarnessProgressSchema.safeParse(safeJson(progressText));
            if (!p.success)
              throw new HarnessContractError(`progress.json does not match the harness contract: ${p.error.message}`);
            progress = p.data;
          }
          return { progress, harnessAlive: harness === 'alive', vllmAlive: vllm === 'alive' };
        };
        const serverUp = async () =>
          (await sh.exec(isAlive(vllmPidFile))).stdout.trim() === 'alive' &&
          (
            await sh.exec(`curl -s -o /dev/null -w '%{http_code}' -m 5 ${q(`${input.spec.baseUrl}/health`)}`)
          ).stdout.trim() === '200';
        const serverGone = async (progress: HarnessProgress | null, why: string) => {
          // Stop the harness (SIGTERM: it closes its energy window and writes `failed`) so nothing outlives the server.
          await run(sh, 'stop harness', killDetached(pidFile));
          const vllmLog = await run(sh, 'vLLM log', tail(`${ws}/vllm/vllm.log`, 15));
          return new ModelServerGoneError(
            `the model server is gone (${why}) during run ${runId} at ${progress?.done ?? '?'}/${progress?.total ?? '?'} samples. vLLM log tail:\n${vllmLog.slice(-1200)}`,
            { runId, done: progress?.done ?? null, total: progress?.total ?? null },
          );
        };
        // Start unless running (then re-attach); a new process must not read the last one's `failed` as its own.
        const start = () =>
          run(
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
          const logTail = await run(sh, 'harness log', tail(`${remoteDir}/harness.log`, 15));
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

    /**
     * Copies a run directory home over SFTP, files already home (same sha256) skipped. The pod is untrusted: its
     * listing is NUL-separated, each name must be a plain one, each entry a regular file by SFTP lstat, and each file,
     * the run and the session stay within the worker's limits. What passes comes home (to a fresh temp name, checked,
     * then renamed into the run folder); anything refused then fails the activity for good, naming it.
     */
    async transferResults(input: TransferResultsInput): Promise<TransferResultsOutput> {
      const limits = deps.transferLimits;
      const localDir = localRunDir(deps.resultsDir, input.resultsSubdir);
      mkdirSync(localDir, { recursive: true });
      const podPath = (name: string) => `${input.remoteDir}/${name}`;
      return withShell(input.endpoint, async (sh) => {
        // NUL-separated: a newline in a name cannot forge a second entry.
        const listing = await run(
          sh,
          'list results',
          `cd ${q(input.remoteDir)} && find . -mindepth 1 -maxdepth 1 -print0`,
        );
        const refused: string[] = [];
        const candidates: { name: string; bytes: number }[] = [];
        for (const entry of [...new Set(listing.split('\0').filter(Boolean))].sort()) {
          const name = entry.startsWith('./') ? entry.slice(2) : entry;
          if (SCRATCH_RE.test(name)) continue;
          if (!isSafeName(name)) {
            refused.push(`${shown(name)} is not a plain file name (letters, digits, '.', '_', '-'; no '..')`);
            continue;
          }
          const kind = await podFileKind(sh, podPath(name));
          if (kind.kind !== 'file') refused.push(`${shown(name)} is ${kind.why}`);
          else candidates.push({ name, bytes: kind.bytes });
        }

        const overLimit: string[] = [];
        const sessionLimit = (name: string, bytes: number, total: number) =>
          `${name} (${bytes} bytes) would bring the session to ${total} bytes, over its limit of ` +
          `${limits.maxSessionBytes} (raise ${LIMIT_ENV.maxSessionBytes})`;
        const fileLimit = (name: string, bytes: number) =>
          `${name} is ${bytes} bytes, over the limit of ${limits.maxFileBytes} per file (raise ${LIMIT_ENV.maxFileBytes})`;
        let sessionBytes = input.sessionBytesSoFar ?? 0;
        let tooMany = 0;
        const accepted: { name: string; bytes: number }[] = [];
        for (const c of candidates) {
          if (c.bytes > limits.maxFileBytes) overLimit.push(fileLimit(c.name, c.bytes));
          else if (accepted.length >= limits.maxFilesPerRun) tooMany++;
          else if (sessionBytes + c.bytes > limits.maxSessionBytes)
            overLimit.push(sessionLimit(c.name, c.bytes, sessionBytes + c.bytes));
          else {
            accepted.push(c);
            sessionBytes += c.bytes;
          }
        }
        if (tooMany > 0) {
          overLimit.unshift(
            `the run folder holds ${accepted.length + tooMany} files, over the limit of ${limits.maxFilesPerRun} per run ` +
              `(raise ${LIMIT_ENV.maxFilesPerRun}); the first ${accepted.length} by name were brought home`,
          );
        }

        // The pod's checksum proves only that the copy is intact; the output carries the one computed here.
        const remote = await remoteSha256(
          sh,
          accepted.map((f) => podPath(f.name)),
        );
        const files: TransferResultsOutput['files'] = [];
        const skipped: string[] = [];
        for (const f of accepted) {
          const want = remote.get(podPath(f.name));
          if (!want) throw new TransferChecksumError(`no checksum for ${f.name} on the pod`);
          const dest = localTarget(localDir, f.name);
          const home = lstatOrNull(dest);
          if (home?.isFile() && home.size === f.bytes && (await sha256File(dest)) === want) {
            skipped.push(f.name);
          } else {
            const tmp = freshTemp(localDir, f.name);
            try {
              await sh.getFile(podPath(f.name), tmp);
              // The pod can grow a file between its lstat and the copy: judge what actually arrived.
              const got = lstatSync(tmp).size;
              const total = sessionBytes - f.bytes + got;
              if (got > limits.maxFileBytes || total > limits.maxSessionBytes) {
                overLimit.push(got > limits.maxFileBytes ? fileLimit(f.name, got) : sessionLimit(f.name, got, total));
                continue;
              }
              sessionBytes = total;
              const sum = await sha256File(tmp);
              if (sum !== want)
                throw new TransferChecksumError(`${f.name}: sha256 ${sum} after transfer, ${want} on the pod`);
              commitDownload(tmp, dest);
            } finally {
              rmSync(tmp, { force: true });
            }
          }
          heartbeat({ file: f.name });
          files.push({ name: f.name, bytes: lstatSync(dest).size, sha256: want });
        }
        const kept = `${files.length} file(s) within the rules are in ${localDir}`;
        if (refused.length > 0) {
          throw new UnsafePodFileError(
            `refused ${refused.length} pod file(s) in ${shown(input.remoteDir)}: ${listProblems(refused)}; ${kept}`,
          );
        }
        if (overLimit.length > 0) {
          throw new TransferLimitError(
            `results in ${shown(input.remoteDir)} over the transfer limits: ${listProblems(overLimit)}; ${kept}`,
          );
        }
        return { files, skipped };
      });
    },

    /**
     * Ends the session's work on a machine that outlives it (the team's own server): vLLM, any harness run and any
     * download, through their pid files, so the shared GPU is free again. A rented pod is terminated instead.
     */
    async stopPodWork(input: StopPodWorkInput): Promise<StopPodWorkOutput> {
      const ws = input.endpoint.workspaceDir;
      return withShell(input.endpoint, async (sh) => {
        const listed = await run(
          sh,
          'list pid files',
          `ls -1 ${q(`${ws}/vllm/pid`)} ${q(`${ws}/runs`)}/*/harness.pid ${q(`${ws}/models`)}/*.download.pid 2>/dev/null; true`,
        );
        const pidFiles = listed
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean);
        const stopped: string[] = [];
        for (const pidFile of pidFiles) {
          const alive = (await run(sh, 'check process', isAlive(pidFile))).trim() === 'alive';
          await run(sh, 'stop process', killDetached(pidFile), 60_000);
          if (alive) stopped.push(pidFile.slice(ws.length + 1));
        }
        if (stopped.length) log.info("stopped the session's processes on the host", { stopped });
        return { stopped };
      });
    },

    /**
     * Best effort: brings vLLM and download logs home before the pod goes away; never fails the session. The rules of
     * transferResults apply (plain names, regular files by lstat, fresh temp names, the session's byte limit), except
     * that a log over the limit comes home as its last bytes, and anything refused is skipped; both with a note.
     */
    async collectLogs(input: CollectLogsInput): Promise<CollectLogsOutput> {
      const ws = input.endpoint.workspaceDir;
      const limits = deps.transferLimits;
      const collected: string[] = [];
      const notes: string[] = [];
      const note = (text: string) => {
        notes.push(text);
        log.warn('collect logs', { note: text });
      };
      let sessionBytes = input.sessionBytesSoFar ?? 0;
      try {
        const localDir = localRunDir(deps.resultsDir, input.resultsSubdir);
        mkdirSync(localDir, { recursive: true });
        await withShell(input.endpoint, async (sh) => {
          const listing = await run(
            sh,
            'list logs',
            `find ${q(`${ws}/vllm`)} -mindepth 1 -maxdepth 1 -name vllm.log -print0 2>/dev/null; ` +
              `find ${q(`${ws}/models`)} -mindepth 1 -maxdepth 1 -name '*.download.log' -print0 2>/dev/null; true`,
          );
          const tailCopy = `${ws}/collect-logs.tail`;
          for (const path of [...new Set(listing.split('\0').filter(Boolean))].sort()) {
            const dir = LOG_DIRS.find((d) => path.startsWith(`${ws}/${d}/`));
            const base = dir ? path.slice(ws.length + dir.length + 2) : '';
            if (!dir || !isSafeName(base)) {
              note(`skipped ${shown(path)}: not a plain log file name`);
              continue;
            }
            const name = `${dir}__${base}`;
            if (collected.length >= limits.maxFilesPerRun) {
              note(`skipped ${name}: over ${limits.maxFilesPerRun} logs (${LIMIT_ENV.maxFilesPerRun})`);
              continue;
            }
            const kind = await podFileKind(sh, path);
            if (kind.kind !== 'file') {
              note(`skipped ${name}: ${kind.why}`);
              continue;
            }
            const left = limits.maxSessionBytes - sessionBytes;
            const cap = Math.min(limits.maxLogBytes, limits.maxFileBytes, left);
            const capEnv =
              cap === left
                ? LIMIT_ENV.maxSessionBytes
                : cap === limits.maxLogBytes
                  ? LIMIT_ENV.maxLogBytes
                  : LIMIT_ENV.maxFileBytes;
            if (cap <= 0) {
              note(
                `skipped ${name}: the session has brought home its limit of ${limits.maxSessionBytes} bytes (${capEnv})`,
              );
              continue;
            }
            let source = path;
            if (kind.bytes > cap) {
              source = tailCopy;
              await run(sh, 'log tail', `tail -c ${cap} ${q(path)} > ${q(tailCopy)}`);
              note(
                `${name}: ${kind.bytes} bytes on the pod, over the limit of ${cap} (${capEnv}); brought home its last ${cap} bytes`,
              );
            }
            const tmp = freshTemp(localDir, name);
            try {
              await sh.getFile(source, tmp);
              const got = lstatSync(tmp).size;
              if (got > cap) {
                note(`skipped ${name}: ${got} bytes arrived, over the limit of ${cap} (${capEnv})`);
                continue;
              }
              commitDownload(tmp, localTarget(localDir, name));
              sessionBytes += got;
              collected.push(name);
            } catch (err) {
              note(`skipped ${name}: ${(err as Error).message}`);
            } finally {
              rmSync(tmp, { force: true });
              if (source !== path) await sh.exec(`rm -f ${q(tailCopy)}`).catch(() => undefined);
            }
          }
        });
      } catch (err) {
        note(`could not collect pod logs: ${(err as Error).message}`);
      }
      return { collected, notes };
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseMarker(text: string) {
  const r = CompleteMarkerSchema.safeParse(safeJson(text));
  return r.success ? r.data : null;
}

function parseXetFallback(text: string): DownloadModelOutput['xetFallback'] {
  if (!text.trim()) return null;
  const r = XetFallbackSchema.safeParse(safeJson(text));
  // An unreadable note still means Xet was turned off for a reason.
  return r.success ? r.data : { reason: 'stall', atBytes: 0, detail: text.trim().slice(0, 300) };
}

const sumBytes = (files: { bytes: number }[]) => files.reduce((a, f) => a + f.bytes, 0);

/** PEP 440: `0.11.0+cu128` (or the sandbox's `0.11.0+sim`) is a local build of release `0.11.0`. */
export function sameRelease(have: string, want: string): boolean {
  return have !== '' && have.split('+')[0] === want.split('+')[0];
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolvePromise(h.digest('hex')));
  });
}
