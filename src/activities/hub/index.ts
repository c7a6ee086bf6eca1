// Public surface of the Hugging Face Hub system: the client, its interface, the typed errors, the activities.
export { createHubActivities } from './activities.js';
export type { HubActivityDeps } from './activities.js';
export { HubClient, DEFAULT_HUB_URL } from './client.js';
export type { HubApi } from './client.js';
export { HubApiError, HubNotFoundError } from './errors.js';
export type { ModelInfo } from './schemas.js';
