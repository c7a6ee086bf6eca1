// The CLI's view of the results when several workers share them through a store (RESULTS_STORE_URL): a command
// that reads a study's results pulls them into the local folder first, one that writes them pushes what it wrote.
import { resolve } from 'node:path';
import { openResultsStore, withSharedResults } from '../activities/results/index.js';
import type { Env } from '../config.js';

export function withStudyResults<T>(
  config: Env,
  input: { study: string; readOnly?: boolean },
  work: () => Promise<T>,
): Promise<T> {
  const resultsDir = resolve(config.PROJECT_ROOT, config.RESULTS_DIR);
  const store = openResultsStore({
    resultsDir,
    url: config.RESULTS_STORE_URL,
    endpoint: config.RESULTS_STORE_ENDPOINT,
    region: config.RESULTS_STORE_REGION,
  });
  return withSharedResults({ store, resultsDir }, { prefix: input.study, readOnly: input.readOnly ?? false }, work);
}
