// The CLI's view of the results when several workers share them through a store (RESULTS_STORE_URL): a command
// that reads a study's results pulls them into the local folder first, one that writes them pushes what it wrote.
import { resolve } from 'node:path';
import { KEPT_DIR, openResultsStore, withSharedResults } from '../activities/results/index.js';
import type { Env } from '../config.js';

function storeOf(config: Env) {
  const resultsDir = resolve(config.PROJECT_ROOT, config.RESULTS_DIR);
  const store = openResultsStore({
    resultsDir,
    url: config.RESULTS_STORE_URL,
    endpoint: config.RESULTS_STORE_ENDPOINT,
    region: config.RESULTS_STORE_REGION,
  });
  return { store, resultsDir };
}

export function withStudyResults<T>(
  config: Env,
  input: { study: string; readOnly?: boolean },
  work: () => Promise<T>,
): Promise<T> {
  return withSharedResults(storeOf(config), { prefix: input.study, readOnly: input.readOnly ?? false }, work);
}

/** Every study's kept-pod records as the store has them (a worker on another machine wrote them). */
export async function pullKeptRecords(config: Env): Promise<void> {
  const keptRecord = new RegExp(`^[^/]+/${KEPT_DIR}/[^/]+\\.json$`);
  await storeOf(config).store.pull({ prefix: '', prune: true, only: (path) => keptRecord.test(path) });
}
