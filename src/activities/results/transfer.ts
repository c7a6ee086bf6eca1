// Bringing results and logs home from the untrusted pod over SFTP, under the rules of ./rules.ts.
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { heartbeat, log } from '@temporalio/activity';
import type { CollectLogsInput, CollectLogsOutput, TransferResultsInput, TransferResultsOutput } from './types.js';
import {
  q,
  remoteSha256,
  runChecked,
  sha256File,
  SshError,
  shellsOver,
  type PodConnector,
  type PodShell,
} from '../ssh/index.js';
import { keepHeartbeating } from '../heartbeat.js';
import { TransferChecksumError, TransferLimitError, UnsafePodFileError } from './errors.js';
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
} from './rules.js';

export interface ResultsTransferActivityDeps {
  connector: PodConnector;
  /** Absolute local results root; transfers write below it. */
  resultsDir: string;
  /** What may be brought home from a pod (bytes per file, files per run, bytes per session). */
  transferLimits: TransferLimits;
}

/** The harness's pid and atomic-write temp files (`.metrics.json.123.tmp`): expected in a run folder, never brought home. */
const SCRATCH_RE = /^\.?[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(pid|tmp)$/;

/** Pod folders (below the workspace) whose logs collectLogs brings home. */
const LOG_DIRS = ['vllm', 'models'] as const;

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

export function createResultsTransferActivities(deps: ResultsTransferActivityDeps) {
  const withShell = shellsOver(deps.connector);
  return {
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
      // One large file can take longer than the heartbeat timeout to copy: the ticker covers it.
      let current = '';
      return keepHeartbeating(
        () => ({ file: current }),
        () =>
          withShell(input.endpoint, async (sh) => {
            // NUL-separated: a newline in a name cannot forge a second entry.
            const listing = await runChecked(
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
                current = f.name;
                const tmp = freshTemp(localDir, f.name);
                try {
                  await sh.getFile(podPath(f.name), tmp);
                  // The pod can grow a file between its lstat and the copy: judge what actually arrived.
                  const got = lstatSync(tmp).size;
                  const total = sessionBytes - f.bytes + got;
                  if (got > limits.maxFileBytes || total > limits.maxSessionBytes) {
                    overLimit.push(
                      got > limits.maxFileBytes ? fileLimit(f.name, got) : sessionLimit(f.name, got, total),
                    );
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
          }),
      );
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
          const listing = await runChecked(
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
              await runChecked(sh, 'log tail', `tail -c ${cap} ${q(path)} > ${q(tailCopy)}`);
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
