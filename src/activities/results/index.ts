// Public surface of the results system: bringing results and logs home from the pod (with its rules and limits),
// manifests, checksums and per-phase summaries.
export { createResultsActivities, CHECKSUM_FILE, MANIFEST_FILE } from './activities.js';
export type { ResultsActivityDeps } from './activities.js';
export { ResultsStoreError, TransferChecksumError, TransferLimitError, UnsafePodFileError } from './errors.js';
export { LIMIT_ENV } from './rules.js';
export type { TransferLimits } from './rules.js';
export { createResultsTransferActivities } from './transfer.js';
export { createKeptResultsActivities, findKeptResults, keptResultsPath, readKeptResults, KEPT_DIR } from './kept.js';
export type { ResultsTransferActivityDeps } from './transfer.js';
export type * from './types.js';
export { LOCAL_ONLY_STORE } from './store.js';
export type { ResultsStore } from './store.js';
export { RESULTS_SCOPES, shareResults, withSharedResults } from './sharing.js';
export type { ResultsScope } from './sharing.js';
export { createS3ResultsStore, parseStoreUrl, S3ResultsStore } from './s3-store.js';
export { openResultsStore } from './open-store.js';
