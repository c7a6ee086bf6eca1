export { createResultsActivities, CHECKSUM_FILE, MANIFEST_FILE } from './activities.js';
export type { ResultsActivityDeps } from './activities.js';
