// The model onto the pod: `hf download` pinned to the Hub's commit, detached and watched, switching Xet off on a stall
// or a known Xet/CAS error, then verified against the Hub's file list (reference/pod-side.md 1).
import { activityInfo, cancellationSignal, heartbeat, log, sleep } from '@temporalio/activity';
import { modelSlug, WATCHDOG_TOUCH_INTERVAL_MS } from '../../shared/constants.js';
import type { DownloadHeartbeat, DownloadModelInput, DownloadModelOutput } from './types.js';
import {
  envPrefix,
  isAlive,
  killDetached,
  parseJson,
  q,
  RemoteCommandError,
  runChecked,
  startDetached,
  tail,
  touchHeartbeat,
  withActivityShell,
  type PodConnector,
  type PodShell,
} from '../ssh/index.js';
import { DownloadFailedError, DownloadVerificationError } from './errors.js';
import { CompleteMarkerSchema, VerifyResultSchema, XetFallbackSchema } from './schemas.js';

export interface HubDownloadActivityDeps {
  connector: PodConnector;
  hfEndpoint?: string;
  /** Reaches `hf download` through a mode-600 file on the pod, never a command line. */
  hfToken?: string;
  pollIntervalMs: number;
  downloadStallTimeoutMs: number;
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

export function createHubDownloadActivities(deps: HubDownloadActivityDeps) {
  return {
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
      return withActivityShell({
        connector: deps.connector,
        endpoint: input.endpoint,
        ...(useToken ? { cleanup: dropToken } : {}),
        fn: async (sh) => {
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
          await runChecked(sh, 'download directory', `mkdir -p ${q(modelDir)} && ${touchHeartbeat(ws)}`);
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
            await runChecked(sh, 'token file', `umask 077 && rm -f ${q(files.token)} && : > ${q(files.token)}`);
            await sh.writeFile(files.token, deps.hfToken);
          };
          // Start unless one is running (then re-attach, and the token file just written is not needed); a stale
          // status file belongs to a finished earlier run.
          const start = async () => {
            await writeToken();
            const running = useToken ? `rm -f ${q(files.token)}` : ':';
            return runChecked(
              sh,
              'start download',
              `if [ -f ${q(files.pid)} ] && kill -0 "$(cat ${q(files.pid)})" 2>/dev/null; then ${running}; else rm -f ${q(files.status)}; fi\n` +
                startDetached({ command: command(), pidFile: files.pid, logFile: files.log, cwd: ws }),
            );
          };
          const fallBack = async (reason: 'stall' | 'xet-error', atBytes: number, detail: string) => {
            log.warn('download: switching to HF_HUB_DISABLE_XET=1', { repoId: input.repoId, reason, atBytes, detail });
            await runChecked(sh, 'stop download', killDetached(files.pid));
            if (useToken) await dropToken(sh); // a process killed before it read the file
            // Finished files stay; partial ones go: hf-xet may have written their ranges out of order, and the HTTP
            // path would append to such a file from its apparent size (a file of the right size with holes in it).
            await runChecked(
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
              const state = await runChecked(
                sh,
                'download progress',
                [
                  // Apparent size (progress) and allocated bytes: a preallocated file has its full apparent size
                  // at once, so growth of either counts as progress.
                  `${touchHeartbeat(ws)}; echo "$(du -sb ${q(modelDir)} | cut -f1) $(du -sB1 ${q(modelDir)} | cut -f1)"`,
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
                const logTail = await runChecked(sh, 'download log', tail(files.log, 30));
                throw new DownloadFailedError(`hf download exited (${status || 'no status'}): ${logTail.slice(-1500)}`);
              } else if (Date.now() - lastGrowthAt > stallTimeoutMs) {
                if (disableXet) {
                  // Stalled over plain HTTP as well: let the retry (with backoff) resume it; finished files stay.
                  await runChecked(sh, 'stop stalled download', killDetached(files.pid));
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
              sh.exec(touchHeartbeat(ws)).catch(() => undefined);
            }, WATCHDOG_TOUCH_INTERVAL_MS);
            try {
              const v = await sh.exec(cmd, { timeoutMs: 3 * 3_600_000, signal: cancellationSignal() });
              const parsed = VerifyResultSchema.safeParse(parseJson(v.stdout.trim().split('\n').pop() ?? ''));
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
        },
      });
    },
  };
}

function parseMarker(text: string) {
  const r = CompleteMarkerSchema.safeParse(parseJson(text));
  return r.success ? r.data : null;
}

function parseXetFallback(text: string): DownloadModelOutput['xetFallback'] {
  if (!text.trim()) return null;
  const r = XetFallbackSchema.safeParse(parseJson(text));
  // An unreadable note still means Xet was turned off for a reason.
  return r.success ? r.data : { reason: 'stall', atBytes: 0, detail: text.trim().slice(0, 300) };
}

const sumBytes = (files: { bytes: number }[]) => files.reduce((a, f) => a + f.bytes, 0);
