// Public surface of the results system: bringing results and logs home from the pod (with its rules and limits),
// manifests, checksums and per-phase summaries.
export { createResultsActivities, CHECKSUM_FILE, MANIFEST_FILE } from './activities.js';
export type { ResultsActivityDeps } from './activities.js';
export { TransferChecksumError, TransferLimitError, UnsafePodFileError } from './errors.js';
export { LIMIT_ENV } from './rules.js';
export type { TransferLimits } from './rules.js';
export { createResultsTransferActivities } from './transfer.js';
export { createKeptResultsActivities, findKeptResults, keptResultsPath, readKeptResults, KEPT_DIR } from './kept.js';
export type { ResultsTransferActivityDeps } from './transfer.js';
export type * from './types.js';
