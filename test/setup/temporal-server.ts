import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { TestProject } from 'vitest/node';
import { DEV_SERVER_SEARCH_ATTRIBUTE_ARGS, findTemporalBinary } from '../../sandbox/temporal-binary.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
  }
}

/**
 * One real Temporal dev server (the CLI built from Go) for the whole test run; test files connect to it with
 * `createFromExistingServer`, which avoids parallel start-up races (stripe/sync-engine-fork PR #236).
 */
export default async function setup(project: TestProject) {
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: findTemporalBinary(process.cwd()) },
      ip: '127.0.0.1',
      ui: false,
      log: { format: 'pretty', level: 'error' },
      extraArgs: DEV_SERVER_SEARCH_ATTRIBUTE_ARGS,
    },
  });
  project.provide('temporalAddress', env.address);
  return async () => {
    await env.teardown();
  };
}
