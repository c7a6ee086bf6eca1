// `npm run fetch-results`: bring home the results a session left on a kept (stopped) pod, or list such pods.
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client } from '@temporalio/client';
import { findKeptResults } from '../activities/results/index.js';
import type { fetchKeptResultsWorkflow } from '../workflows/index.js';
import { EXIT, parseCommandArgs, UsageError } from './args.js';

export interface FetchResultsArgs {
  podId: string | null;
  list: boolean;
  sandbox: boolean;
}

export function parseFetchResultsArgs(args: string[]): FetchResultsArgs {
  const { values } = parseCommandArgs('fetch-results', {
    args,
    options: {
      pod: { type: 'string' },
      list: { type: 'boolean', default: false },
      sandbox: { type: 'boolean', default: false },
    },
  });
  if (!values.list && !values.pod) throw new UsageError('fetch-results needs --pod <pod id> (or --list)');
  if (values.list && values.pod) throw new UsageError('fetch-results takes --pod or --list, not both');
  return { podId: values.pod ?? null, list: values.list, sandbox: values.sandbox };
}

export async function fetchResultsCommand(a: {
  args: FetchResultsArgs;
  resultsDir: string;
  connect: () => Promise<{ client: Client; taskQueue: string }>;
}): Promise<number> {
  const kept = findKeptResults(a.resultsDir);
  if (a.args.list) {
    if (!kept.length) console.log(`no kept pods recorded under ${a.resultsDir}`);
    for (const { path, record: r } of kept) {
      console.log(
        `${r.podId}  ${r.study}/${r.phaseId}/${r.model}: ${r.runs.map((x) => x.prompt).join(', ')} not home ` +
          `(kept ${r.keptAt}; ${r.reason})\n  record: ${path}`,
      );
    }
    return EXIT.ok;
  }
  const found = kept.find((k) => k.record.podId === a.args.podId);
  if (!found) {
    throw new UsageError(
      `no kept-pod record for pod ${a.args.podId} under ${a.resultsDir}/*/kept-pods/ (npm run fetch-results -- --list)`,
    );
  }
  const { client, taskQueue } = await a.connect();
  const workflowId = `fetch-results-${found.record.podId}`;
  console.log(`starting pod ${found.record.podId} to bring ${found.record.runs.length} run(s) home (${workflowId})`);
  let handle;
  try {
    handle = await client.workflow.start<typeof fetchKeptResultsWorkflow>('fetchKeptResultsWorkflow', {
      taskQueue,
      workflowId,
      args: [{ record: found.record }],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    handle = client.workflow.getHandle<typeof fetchKeptResultsWorkflow>(workflowId);
    console.log(`${workflowId} is already running; waiting for it`);
  }
  try {
    const out = await handle.result();
    for (const r of out.runs) console.log(`home: ${r.prompt} -> results/${r.resultsSubdir} (${r.files} files)`);
    console.log(`pod ${out.podId} terminated at ${out.podTerminatedAt}`);
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const cause = err.cause?.cause instanceof Error ? err.cause.cause : err.cause;
    console.error(`error: the results are still on pod ${found.record.podId}: ${cause?.message ?? err.message}`);
    return EXIT.failed;
  }
}
