import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { activityInfo, cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { modelSlug } from '../../shared/constants.js';
import type {
  CollectLogsInput,
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
  TransferResultsInput,
  TransferResultsOutput,
} from '../../shared/types.js';
import type { PodConnector, PodShell } from './client.js';
import {
  DownloadFailedError,
  DownloadVerificationError,
  HarnessContractError,
  HarnessFailedError,
  ModelDoesNotFitError,
  RemoteCommandError,
  TransferChecksumError,
  VllmStartFailedError,
} from './errors.js';
import { envPrefix, isAlive, killDetached, q, startDetached, tail } from './remote.js';
import { CompleteMarkerSchema, HarnessProgressSchema, ModelsListSchema, VerifyResultSchema, VllmVersionSchema } from './schemas.js';

export interface PodActivityDeps {
  connector: PodConnector;
  /** Study-relative paths (dataset, prompts) resolve against this. */
  projectRoot: string;
  /** Local folder holding the harness package (`pod/harness`). */
  harnessDir: string;
  /** Absolute local results root; activities write below it. */
  resultsDir: string;
  hfEndpoint?: string;
  hfToken?: string;
  pollIntervalMs: number;
  downloadStallTimeoutMs: number;
}

/** Patterns in a vLLM log that mean "this model does not fit here": retrying the same settings cannot help. */
const DOES_NOT_FIT = [
  /CUDA out of memory/i,
  /OutOfMemoryError/,
  /max seq len \(\d+\) is larger than the maximum number of tokens that can be stored in KV cache/i,
  /No available memory for the cache blocks/i,
];

export function createPodActivities(deps: PodActivityDeps) {
  const local = (p: string) => (isAbsolute(p) ? p : resolve(deps.projectRoot, p));

  async function withShell<T>(endpoint: PodEndpoint, fn: (sh: PodShell) => Promise<T>): Promise<T> {
    const sh = await deps.connector.connect(endpoint.ssh, { signal: cancellationSignal() });
    try {
      return await fn(sh);
    } finally {
      sh.close();
    }
  }

  /** Runs a command and throws RemoteCommandError on a non-zero exit. */
  async function run(sh: PodShell, step: string, command: string, timeoutMs = 120_000): Promise<string> {
    const r = await sh.exec(command, { timeoutMs, signal: cancellationSignal() });
    if (r.code !== 0) throw new RemoteCommandError(step, r.code, (r.stderr || r.stdout).slice(-2000));
    return r.stdout;
  }

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
    const installed = async () => (await sh.exec('vllm --version 2>/dev/null | tail -n 1', { timeoutMs: 120_000 })).stdout.trim();
    let have = await installed();
    if (sameRelease(have, want)) return have;
    log.info('installing vLLM on the pod', { have: have || 'none', want });
    await run(sh, 'pip install vllm', `python3 -m pip install -q ${q(`vllm==${want}`)}`, 45 * 60_000);
    have = await installed();
    if (!sameRelease(have, want)) throw new RemoteCommandError('vLLM version check', 1, `wanted ${want}, the pod has ${have || 'none'}`);
    return have;
  }

  return {
    /** Uploads the harness, dataset and prompts; ensures the pinned harness requirements and vLLM version. */
    async preparePod(input: PreparePodInput): Promise<PreparePodOutput> {
      const ws = input.endpoint.workspaceDir;
      const remote = { harnessDir: `${ws}/harness`, datasetPath: `${ws}/data/dataset.jsonl`, promptsDir: `${ws}/prompts` };
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
        await ensureUploaded(sh, [...harnessFiles, { localPath: requirements, remotePath: `${remote.harnessDir}/requirements.txt` }]);

        const promptFiles = input.prompts.map((p) => ({ localPath: local(p.templatePath), remotePath: `${remote.promptsDir}/${p.name}.txt` }));
        const fewShot = input.prompts
          .filter((p) => p.fewShotExamplesPath)
          .map((p) => ({ name: p.name, localPath: local(p.fewShotExamplesPath ?? ''), remotePath: `${remote.promptsDir}/${p.name}.examples.jsonl` }));
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
          await run(sh, 'pip install', `python3 -m pip install -q -r ${q(`${remote.harnessDir}/requirements.txt`)}`, 20 * 60_000);
          probe = await sh.exec(check, { timeoutMs: 60_000 });
          if (probe.code !== 0) throw new RemoteCommandError('harness requirements check', probe.code, probe.stderr.slice(-1000));
        }
        const vllmVersion = await ensureVllmVersion(sh, input.vllmVersion);
        return { datasetSha256, promptSha256, fewShotSha256, remote, pythonVersion: probe.stdout.trim(), vllmVersion };
      });
    },

    /**
     * Ensures the model is on the pod volume, verified. Runs `hf download` detached and watches bytes on disk;
     * a download that stops growing is killed and resumed with Xet disabled. Verification deletes bad files.
     */
    async downloadModel(input: DownloadModelInput): Promise<DownloadModelOutput> {
      const ws = input.endpoint.workspaceDir;
      const modelDir = `${ws}/models/${modelSlug(input.repoId)}`;
      const pidFile = `${modelDir}.download.pid`;
      const logFile = `${modelDir}.download.log`;
      const startedAt = Date.now();
      return withShell(input.endpoint, async (sh) => {
        const marker = await sh.exec(`cat ${q(`${modelDir}/.complete`)} 2>/dev/null`);
        const done = marker.code === 0 ? parseMarker(marker.stdout) : null;
        if (done && (done.revision === input.revision || done.commitSha === input.revision)) {
          return { modelDir, commitSha: done.commitSha, files: done.files, totalBytes: sumBytes(done.files), durationMs: 0, reused: true, usedXetFallback: false };
        }
        let disableXet = (activityInfo().heartbeatDetails as { disableXet?: boolean } | undefined)?.disableXet ?? false;
        let usedXetFallback = disableXet;
        const env = () =>
          envPrefix({
            HF_HOME: `${ws}/hf`,
            HF_ENDPOINT: deps.hfEndpoint,
            HF_TOKEN: deps.hfToken,
            HF_HUB_DISABLE_XET: disableXet ? '1' : undefined,
            HF_HUB_DOWNLOAD_TIMEOUT: '60',
          });
        const command = () =>
          `${env()}hf download ${q(input.repoId)} --revision ${q(input.revision)} --local-dir ${q(modelDir)}; echo "exit=$?" >> ${q(`${modelDir}.download.status`)}`;
        const start = () =>
          run(sh, 'start download', `mkdir -p ${q(modelDir)} && rm -f ${q(`${modelDir}.download.status`)} && ${startDetached({ command: command(), pidFile, logFile, cwd: ws })}`);
        await start();

        let lastBytes = -1;
        let lastGrowthAt = Date.now();
        for (;;) {
          const state = await run(
            sh,
            'download progress',
            `${touch(ws)}; du -sb ${q(modelDir)} | cut -f1; ${isAlive(pidFile)}; cat ${q(`${modelDir}.download.status`)} 2>/dev/null | tail -n 1`,
          );
          const [bytesLine = '0', alive = 'dead', status = ''] = state.trim().split('\n');
          const bytes = Number(bytesLine) || 0;
          if (bytes !== lastBytes) {
            lastBytes = bytes;
            lastGrowthAt = Date.now();
          }
          heartbeat({ bytesDone: bytes, disableXet });
          if (alive.trim() === 'dead') {
            if (status.trim() === 'exit=0') break;
            const logTail = await run(sh, 'download log', tail(logFile, 30));
            throw new DownloadFailedError(`hf download exited (${status.trim() || 'no status'}): ${logTail.slice(-1500)}`);
          }
          if (Date.now() - lastGrowthAt > deps.downloadStallTimeoutMs) {
            // A stalled (typically Xet) transfer: kill it and resume into the same directory over plain HTTP.
            log.warn('download stalled; restarting with Xet disabled', { bytes, repoId: input.repoId });
            await run(sh, 'kill stalled download', killDetached(pidFile));
            disableXet = true;
            usedXetFallback = true;
            await start();
            lastGrowthAt = Date.now();
          }
          await sleep(deps.pollIntervalMs);
        }

        const verifyCmd = `${envPrefix({ HF_HOME: `${ws}/hf`, HF_ENDPOINT: deps.hfEndpoint, HF_TOKEN: deps.hfToken, PYTHONPATH: `${ws}/harness` })}python3 -m harness.verify_model --model-dir ${q(modelDir)} --repo ${q(input.repoId)} --revision ${q(input.revision)}`;
        const v = await sh.exec(verifyCmd, { timeoutMs: 30 * 60_000 });
        const parsed = VerifyResultSchema.safeParse(safeJson(v.stdout.trim().split('\n').pop() ?? ''));
        if (!parsed.success) throw new RemoteCommandError('verify model', v.code, (v.stderr || v.stdout).slice(-1500));
        if (!parsed.data.ok) {
          // Bad files were deleted by the verifier; the retry downloads them again.
          throw new DownloadVerificationError(`model ${input.repoId} failed verification: ${parsed.data.problems.join('; ')}`);
        }
        const files = parsed.data.files;
        return { modelDir, commitSha: parsed.data.commitSha, files, totalBytes: sumBytes(files), durationMs: Date.now() - startedAt, reused: false, usedXetFallback };
      });
    },

    /** Ensures vLLM serves the model on the pod's loopback: reuses a healthy server, else starts one and warms it. */
    async startVllm(input: StartVllmInput): Promise<StartVllmOutput> {
      const ws = input.endpoint.workspaceDir;
      const v = input.vllm;
      const baseUrl = `http://127.0.0.1:${v.port}`;
      const pidFile = `${ws}/vllm/pid`;
      const logFile = `${ws}/vllm/vllm.log`;
      const args = [
        'vllm', 'serve', input.modelDir,
        '--served-model-name', input.servedModelName,
        '--host', '127.0.0.1', '--port', String(v.port),
        '--dtype', v.dtype,
        '--max-model-len', String(v.maxModelLen),
        '--max-num-seqs', String(v.maxNumSeqs),
        '--max-num-batched-tokens', String(v.maxNumBatchedTokens),
        '--seed', String(v.seed),
        '--gpu-memory-utilization', String(v.gpuMemoryUtilization),
        '--tensor-parallel-size', String(input.tensorParallelSize),
        v.enablePrefixCaching ? '--enable-prefix-caching' : '--no-enable-prefix-caching',
        '--generation-config', 'vllm',
        ...(input.reasoningParser ? ['--reasoning-parser', input.reasoningParser] : []),
      ];
      const commandLine = args.map(q).join(' ');
      const startedAt = Date.now();
      return withShell(input.endpoint, async (sh) => {
        const curl = (path: string) => `curl -s -m 10 ${q(`${baseUrl}${path}`)}`;
        const healthy = async () => (await sh.exec(`curl -s -o /dev/null -w '%{http_code}' -m 5 ${q(`${baseUrl}/health`)}`)).stdout.trim() === '200';
        const listsModel = async () => {
          const r = ModelsListSchema.safeParse(safeJson((await sh.exec(curl('/v1/models'))).stdout));
          return r.success && r.data.data.some((m) => m.id === input.servedModelName);
        };
        const version = async () => VllmVersionSchema.safeParse(safeJson((await sh.exec(curl('/version'))).stdout)).data?.version ?? 'unknown';

        const previous = (await sh.exec(`cat ${q(`${ws}/vllm/cmdline`)} 2>/dev/null`)).stdout.trim();
        const alive = (await sh.exec(isAlive(pidFile))).stdout.trim() === 'alive';
        if (alive && previous === commandLine && (await healthy()) && (await listsModel())) {
          return { baseUrl, version: await version(), commandLine, loadTimeMs: 0, reused: true };
        }
        // A server with other settings (or a dead one) is replaced, never silently reused.
        await run(sh, 'stop old vLLM', killDetached(pidFile));
        await run(
          sh,
          'start vLLM',
          `printf '%s' ${q(commandLine)} > ${q(`${ws}/vllm/cmdline`)} && : > ${q(logFile)} && ${startDetached({ command: `${envPrefix({ HF_HUB_OFFLINE: '1' })}exec ${commandLine}`, pidFile, logFile, cwd: ws })}`,
        );
        const deadline = startedAt + v.startupTimeoutMs;
        for (;;) {
          await sleep(Math.min(deps.pollIntervalMs, 2_000));
          heartbeat({ stage: 'loading', elapsedMs: Date.now() - startedAt });
          await sh.exec(touch(ws));
          if (await healthy()) break;
          if ((await sh.exec(isAlive(pidFile))).stdout.trim() === 'dead') {
            const logTail = await run(sh, 'vLLM log', tail(logFile, 60));
            if (DOES_NOT_FIT.some((re) => re.test(logTail))) {
              throw new ModelDoesNotFitError(
                `${input.servedModelName} does not fit this GPU at max-model-len ${v.maxModelLen}, max-num-seqs ${v.maxNumSeqs}, ` +
                  `gpu-memory-utilization ${v.gpuMemoryUtilization}: lower max-model-len or max-num-seqs, or choose a larger GPU. Log tail:\n${logTail.slice(-1500)}`,
              );
            }
            throw new VllmStartFailedError(`vLLM exited during startup. Log tail:\n${logTail.slice(-1500)}`);
          }
          if (Date.now() > deadline) {
            const logTail = await run(sh, 'vLLM log', tail(logFile, 40));
            await run(sh, 'stop slow vLLM', killDetached(pidFile));
            throw new VllmStartFailedError(`vLLM not healthy after ${v.startupTimeoutMs} ms. Log tail:\n${logTail.slice(-1500)}`);
          }
        }
        if (!(await listsModel())) throw new VllmStartFailedError(`/v1/models does not list ${input.servedModelName}`);
        const loadTimeMs = Date.now() - startedAt;
        const warm = await sh.exec(
          `curl -s -m 120 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d ${q(JSON.stringify({ model: input.servedModelName, messages: [{ role: 'user', content: 'Say OK.' }], max_tokens: 8, temperature: 0 }))} ${q(`${baseUrl}/v1/chat/completions`)}`,
        );
        if (warm.stdout.trim() !== '200') throw new VllmStartFailedError(`warm-up request answered HTTP ${warm.stdout.trim() || 'nothing'}`);
        return { baseUrl, version: await version(), commandLine, loadTimeMs, reused: false };
      });
    },

    /**
     * Ensures the harness run completes: starts it detached, or re-attaches to the one already running (same run
     * id), and heartbeats samples done / total until its progress file says done.
     */
    async runInference(input: RunInferenceInput): Promise<RunInferenceOutput> {
      const ws = input.endpoint.workspaceDir;
      const remoteDir = `${ws}/runs/${input.spec.runId}`;
      const pidFile = `${remoteDir}/harness.pid`;
      const specJson = JSON.stringify({ ...input.spec, outputDir: remoteDir }, null, 2);
      const startedAt = Date.now();
      return withShell(input.endpoint, async (sh) => {
        await run(sh, 'run directory', `mkdir -p ${q(remoteDir)}`);
        await sh.writeFile(`${remoteDir}/spec.json`, specJson);
        const readProgress = async () => {
          const r = await sh.exec(`${touch(ws)}; cat ${q(`${remoteDir}/progress.json`)} 2>/dev/null`);
          if (r.code !== 0 || !r.stdout.trim()) return null;
          const p = HarnessProgressSchema.safeParse(safeJson(r.stdout));
          if (!p.success) throw new HarnessContractError(`progress.json does not match the harness contract: ${p.error.message}`);
          return p.data;
        };
        const start = () =>
          run(
            sh,
            'start harness',
            startDetached({
              command: `${envPrefix({ PYTHONPATH: `${ws}/harness` })}exec python3 -m harness.run --spec ${q(`${remoteDir}/spec.json`)}`,
              pidFile,
              logFile: `${remoteDir}/harness.stdout`,
              cwd: remoteDir,
            }),
          );

        let progress = await readProgress();
        if (progress?.state !== 'done') {
          const started = await start();
          log.info('harness', { runId: input.spec.runId, state: started.trim() });
        }
        for (;;) {
          progress = await readProgress();
          if (progress?.state === 'done') break;
          if (progress?.state === 'failed') {
            throw new HarnessFailedError(`harness run ${input.spec.runId} failed: ${progress.error ?? 'no error text'}`);
          }
          const alive = (await sh.exec(isAlive(pidFile))).stdout.trim() === 'alive';
          if (!alive) {
            // The process died without writing a final state (killed, pod restarted): resume from its predictions.
            const logTail = await run(sh, 'harness log', tail(`${remoteDir}/harness.stdout`, 20));
            log.warn('harness process gone without a final state; restarting it', { logTail: logTail.slice(-500) });
            await start();
          }
          const hb: InferenceHeartbeat = {
            stage: progress?.stage ?? 'starting',
            done: progress?.done ?? 0,
            total: progress?.total ?? 0,
            tokensPerS: progress?.tokensPerS ?? null,
          };
          heartbeat(hb);
          await sleep(deps.pollIntervalMs);
        }
        return { remoteDir, done: progress.done, total: progress.total, durationMs: Date.now() - startedAt };
      });
    },

    /** Copies a run directory home over SFTP; every file is checked against its on-pod sha256, matching files skipped. */
    async transferResults(input: TransferResultsInput): Promise<TransferResultsOutput> {
      const localDir = join(deps.resultsDir, input.resultsSubdir);
      mkdirSync(localDir, { recursive: true });
      return withShell(input.endpoint, async (sh) => {
        const listing = await run(sh, 'list results', `cd ${q(input.remoteDir)} && find . -maxdepth 1 -type f ! -name '*.pid' ! -name '*.tmp' -printf '%f\\n'`);
        const names = listing.split('\n').map((s) => s.trim()).filter(Boolean).sort();
        const remote = await remoteSha256(sh, names.map((n) => `${input.remoteDir}/${n}`));
        const files: TransferResultsOutput['files'] = [];
        const skipped: string[] = [];
        for (const name of names) {
          const want = remote.get(`${input.remoteDir}/${name}`);
          if (!want) throw new TransferChecksumError(`no checksum for ${name} on the pod`);
          const dest = join(localDir, name);
          if (existsSync(dest) && (await sha256File(dest)) === want) {
            skipped.push(name);
          } else {
            const tmp = `${dest}.partial`;
            await sh.getFile(`${input.remoteDir}/${name}`, tmp);
            const got = await sha256File(tmp);
            if (got !== want) {
              rmSync(tmp, { force: true });
              throw new TransferChecksumError(`${name}: sha256 ${got} after transfer, ${want} on the pod`);
            }
            renameSync(tmp, dest);
          }
          heartbeat({ file: name });
          files.push({ name, bytes: statSync(dest).size, sha256: want });
        }
        return { files, skipped };
      });
    },

    /** Best effort: brings vLLM and download logs home before the pod goes away. Never fails the session. */
    async collectLogs(input: CollectLogsInput): Promise<{ collected: string[] }> {
      const ws = input.endpoint.workspaceDir;
      const localDir = join(deps.resultsDir, input.resultsSubdir);
      mkdirSync(localDir, { recursive: true });
      const collected: string[] = [];
      try {
        await withShell(input.endpoint, async (sh) => {
          const list = await sh.exec(`ls -1 ${q(`${ws}/vllm/vllm.log`)} ${q(`${ws}/models`)}/*.download.log 2>/dev/null`);
          for (const path of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
            const name = path.slice(ws.length + 1).replace(/\//g, '__');
            await sh.getFile(path, join(localDir, name));
            collected.push(name);
          }
        });
      } catch (err) {
        log.warn('could not collect pod logs', { error: (err as Error).message });
      }
      return { collected };
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
