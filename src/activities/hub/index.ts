// Public surface of the Hugging Face Hub system: the client, its interface, the typed errors, the metadata activity
// and the download onto the pod (with the Xet fallback and verification).
export { createHubActivities } from './activities.js';
export type { HubActivityDeps } from './activities.js';
export { HubClient, DEFAULT_HUB_URL } from './client.js';
export type { HubApi } from './client.js';
export { createHubDownloadActivities, XET_ERROR_RE } from './download.js';
export type { HubDownloadActivityDeps } from './download.js';
export { DownloadFailedError, DownloadVerificationError, HubApiError, HubNotFoundError } from './errors.js';
export { ModelConfigSchema, TokenizerConfigSchema, TokenizerJsonSchema } from './schemas.js';
export type { ModelInfo } from './schemas.js';
export type * from './types.js';
