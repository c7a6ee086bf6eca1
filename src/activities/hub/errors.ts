import { ErrorTypes } from '../../shared/errors.js';

/** The Hub answered with an error or not at all (5xx, 429, network): retryable. */
export class HubApiError extends Error {
  override readonly name: string = ErrorTypes.HubApi;
  constructor(
    message: string,
    /** HTTP status; null when no response arrived. */
    readonly status: number | null,
    readonly path: string,
  ) {
    super(message);
  }
}

/** The repo or revision does not exist, or the token may not see it: a person has to fix the study file. */
export class HubNotFoundError extends HubApiError {
  override readonly name: string = ErrorTypes.HubNotFound;
}

export class DownloadFailedError extends Error {
  override readonly name = ErrorTypes.DownloadFailed;
}

/** Downloaded files do not match the Hub's metadata or their own headers. */
export class DownloadVerificationError extends Error {
  override readonly name = ErrorTypes.DownloadVerification;
}
