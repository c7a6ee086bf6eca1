/**
 * Rules for what the worker brings home from a pod. The pod is untrusted (a community host, any image): its file
 * names, file types and sizes are input, so only plain names are accepted, never a symlink or special file, within
 * fixed limits, and nothing is ever written outside the run's own folder.
 */
import { randomUUID } from 'node:crypto';
import { lstatSync, renameSync, rmSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { PodShell } from '../ssh/index.js';
import { UnsafePodFileError } from './errors.js';

/** What the worker brings home, at most (the worker's TRANSFER_MAX_* settings). */
export interface TransferLimits {
  /** Largest single file brought home, in bytes. */
  maxFileBytes: number;
  /** Most files brought home from one run folder. */
  maxFilesPerRun: number;
  /** Most bytes brought home by one pod session (results and logs together). */
  maxSessionBytes: number;
  /** Largest JSON file the worker parses (environment.json, metrics.json), in bytes. */
  maxJsonBytes: number;
  /** A collected log over this size is brought home as its last this many bytes. */
  maxLogBytes: number;
}

/** The setting a researcher raises for each limit (named in every over-limit error). */
export const LIMIT_ENV: Record<keyof TransferLimits, string> = {
  maxFileBytes: 'TRANSFER_MAX_FILE_BYTES',
  maxFilesPerRun: 'TRANSFER_MAX_FILES_PER_RUN',
  maxSessionBytes: 'TRANSFER_MAX_SESSION_BYTES',
  maxJsonBytes: 'TRANSFER_MAX_JSON_BYTES',
  maxLogBytes: 'TRANSFER_MAX_LOG_BYTES',
};

/** The only pod file names brought home: one path component, no leading dot, no `..`, nothing a shell mangles. */
const SAFE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isSafeName(name: string): boolean {
  return SAFE_NAME_RE.test(name) && !name.includes('..');
}

/** A pod-supplied name as it may be shown in one line of an error: quoted, escaped, cut short. */
export function shown(name: string): string {
  return JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}...` : name);
}

/** What an SFTP lstat says a pod path is. */
export type PodFileKind = Awaited<ReturnType<PodShell['lstat']>>['kind'];

export function describeKind(kind: PodFileKind): string {
  switch (kind) {
    case 'file':
      return 'a regular file';
    case 'directory':
      return 'a directory';
    case 'symlink':
      return 'a symbolic link';
    case 'other':
      return 'a special file (FIFO, socket or device)';
  }
}

/** The local folder for `subdir` below `root`, refusing a subdir that leaves it. */
export function localRunDir(root: string, subdir: string): string {
  const dir = resolve(root, subdir);
  const rel = relative(resolve(root), dir);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new UnsafePodFileError(`results folder ${shown(subdir)} is not inside ${root}`);
  }
  return dir;
}

/** The local path of pod file `name` in `dir`; throws unless it lands directly in `dir`. */
export function localTarget(dir: string, name: string): string {
  const dest = resolve(dir, name);
  if (!isSafeName(name) || dirname(dest) !== resolve(dir)) {
    throw new UnsafePodFileError(`pod file ${shown(name)} would be written outside ${dir}`);
  }
  return dest;
}

/**
 * A fresh name in `dir` to download into: never an existing path, so the download cannot follow a symlink planted
 * at the destination. The leading dot and `.partial` keep it out of the run's checksums.
 */
export function freshTemp(dir: string, name: string): string {
  return join(dir, `.${name}.${randomUUID()}.partial`);
}

export function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * Moves a finished download from its temp name to `dest`. The temp must be a plain file; `rename` replaces a
 * symlink at `dest` rather than writing through it, and anything else there (a directory) is refused.
 */
export function commitDownload(tmp: string, dest: string): void {
  const got = lstatOrNull(tmp);
  if (!got?.isFile()) {
    rmSync(tmp, { force: true, recursive: true });
    throw new UnsafePodFileError(`download of ${dest} did not produce a regular file`);
  }
  const there = lstatOrNull(dest);
  if (there && !there.isFile() && !there.isSymbolicLink()) {
    rmSync(tmp, { force: true });
    throw new UnsafePodFileError(`${dest} exists and is not a regular file; refusing to replace it`);
  }
  renameSync(tmp, dest);
}

/** One line: "a (why); b (why) and 3 more". */
export function listProblems(problems: string[], max = 4): string {
  const head = problems.slice(0, max).join('; ');
  return problems.length > max ? `${head} and ${problems.length - max} more` : head;
}
