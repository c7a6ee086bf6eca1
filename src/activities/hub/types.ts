/**
 * Inputs and outputs of the Hub activities (the model's file list, its download onto the pod): one object in, one
 * object out. Pure types, safe for workflow code (which imports them with `import type`). Nothing here may carry a
 * secret: Temporal stores all of it in workflow history.
 */

import type { PodEndpoint } from '../ssh/index.js';

export interface FetchModelMetadataInput {
  repoId: string;
  /** Branch, tag or commit sha; resolved to a commit. */
  revision: string;
}
/** The Hub's file list for one commit: what the download must produce (sizes in bytes; sha256 for LFS files). */
export interface ModelMetadata {
  repoId: string;
  revision: string;
  commitSha: string;
  files: { path: string; bytes: number; sha256: string | null }[];
  totalBytes: number;
}

export interface DownloadModelInput {
  endpoint: PodEndpoint;
  repoId: string;
  revision: string;
  /** From fetchModelMetadata: the download is pinned to `expected.commitSha` and verified against its files. */
  expected: ModelMetadata;
  /** No byte on disk for this long: kill and resume with Xet off. Default: the worker's DOWNLOAD_STALL_TIMEOUT_MS. */
  stallTimeoutMs?: number;
  /** Also hash every LFS file against the Hub's sha256 before `.complete` (minutes for tens of GB). */
  verifySha256?: boolean;
}
export interface DownloadModelOutput {
  modelDir: string;
  commitSha: string;
  files: { path: string; bytes: number }[];
  totalBytes: number;
  durationMs: number;
  reused: boolean;
  usedXetFallback: boolean;
  /** Why the download switched to HF_HUB_DISABLE_XET=1, if it did. */
  xetFallback: { reason: 'stall' | 'xet-error'; atBytes: number; detail: string } | null;
  /** Problems verification found (and deleted files for) before a later pass fetched them again. */
  repaired: string[];
  sha256Verified: boolean;
  sshReconnects: number;
}

/** What the download activity heartbeats (the CLI and Web UI show it). */
export interface DownloadHeartbeat {
  stage: 'downloading' | 'verifying';
  bytesDone: number;
  totalBytes: number;
  disableXet: boolean;
}
