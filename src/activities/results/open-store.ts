import { createS3ResultsStore } from './s3-store.js';
import { LOCAL_ONLY_STORE, type ResultsStore } from './store.js';

/** The results store a worker or the CLI works with: the shared bucket when one is configured, else the folder. */
export function openResultsStore(opts: {
  resultsDir: string;
  url?: string | undefined;
  endpoint?: string | undefined;
  region: string;
}): ResultsStore {
  if (!opts.url) return LOCAL_ONLY_STORE;
  return createS3ResultsStore({
    resultsDir: opts.resultsDir,
    url: opts.url,
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
  });
}
