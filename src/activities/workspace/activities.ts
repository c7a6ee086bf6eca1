// The pod's workspace: what the harness needs uploaded and installed, the pod's watchdog, and ending the session's
// processes on a machine that outlives it.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { log } from '@temporalio/activity';
import type { PreparePodInput, PreparePodOutput, StopPodWorkInput, StopPodWorkOutput } from './types.js';
import { resolveStudyFiles } from '../../study/files.js';
import { StudyInvalidError } from '../../study/load.js';
import { DEFAULT_RUNPOD_BASE_URL } from '../runpod/index.js';
import {
  isAlive,
  killDetached,
  q,
  RemoteCommandError,
  remoteSha256,
  runChecked,
  sha256File,
  touchHeartbeat,
  shellsOver,
  type PodConnector,
  type PodShell,
} from '../ssh/index.js';
import { ensureVllmVersion } from '../vllm/index.js';
import { keepHeartbeating } from '../heartbeat.js';
import { ensureWatchdog } from './watchdog.js';

export interface WorkspaceActivityDeps {
  connector: PodConnector;
  /** Study-relative paths (dataset, prompts) resolve against this. */
  projectRoot: string;
  /** Local folder holding the harness package (`pod/harness`). */
  harnessDir: string;
  /** RunPod REST v2 base URL a pod's watchdog calls to stop itself. */
  runpodBaseUrl?: string;
  /** The account key; copied onto a pod only when its study opts in (watchdog `selfStop: account-key-opt-in`). */
  runpodApiKey?: string;
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

export function createWorkspaceActivities(deps: WorkspaceActivityDeps) {
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
  const withShell = shellsOver(deps.connector);
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
      // Uploads and pip installs run long without a poll loop: the ticker shows Temporal the worker is alive.
      let step = 'uploading';
      return keepHeartbeating(
        () => ({ step }),
        () =>
          withShell(input.endpoint, async (sh) => {
            await runChecked(
              sh,
              'prepare directories',
              `mkdir -p ${[`${remote.harnessDir}/harness`, `${ws}/data`, remote.promptsDir, `${ws}/runs`, `${ws}/models`, `${ws}/vllm`].map(q).join(' ')} && ${touchHeartbeat(ws)}`,
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
            const fewShotSha256 = Object.fromEntries(
              fewShot.map((f, i) => [f.name, rest[promptFiles.length + i] ?? '']),
            );

            // The harness needs CodeCarbon 2.7.1 exactly; install the pinned requirements when the image lacks them.
            const check = `python3 -c "import codecarbon, huggingface_hub, sys; assert codecarbon.__version__ == '2.7.1', codecarbon.__version__; print(sys.version.split()[0])"`;
            let probe = await sh.exec(check, { timeoutMs: 60_000 });
            if (probe.code !== 0) {
              log.info('installing harness requirements on the pod', { detail: probe.stderr.slice(-300) });
              step = 'pip install';
              await runChecked(
                sh,
                'pip install',
                `python3 -m pip install -q -r ${q(`${remote.harnessDir}/requirements.txt`)}`,
                20 * 60_000,
              );
              probe = await sh.exec(check, { timeoutMs: 60_000 });
              if (probe.code !== 0)
                throw new RemoteCommandError('harness requirements check', probe.code, probe.stderr.slice(-1000));
            }
            step = `ensure vLLM ${input.vllmVersion}`;
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
          }),
      );
    },

    /**
     * Ends the session's work on a machine that outlives it (the team's own server): vLLM, any harness run and any
     * download, through their pid files, so the shared GPU is free again. A rented pod is terminated instead.
     */
    async stopPodWork(input: StopPodWorkInput): Promise<StopPodWorkOutput> {
      const ws = input.endpoint.workspaceDir;
      return withShell(input.endpoint, async (sh) => {
        const listed = await runChecked(
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
          const alive = (await runChecked(sh, 'check process', isAlive(pidFile))).trim() === 'alive';
          await runChecked(sh, 'stop process', killDetached(pidFile), 60_000);
          if (alive) stopped.push(pidFile.slice(ws.length + 1));
        }
        if (stopped.length) log.info("stopped the session's processes on the host", { stopped });
        return { stopped };
      });
    },
  };
}
