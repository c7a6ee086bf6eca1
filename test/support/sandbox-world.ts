// The sandbox world of the end-to-end tests: a key pair in a temp dir, a client of the shared Temporal dev server,
// the sandbox servers (RunPod emulator with sshd pods, the Hub, optionally the team server) and production workers
// on task queues of their own. One world per test file; `stop()` closes every part even if an earlier one fails.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { loadConfig, type Env } from '../../src/config.js';
import { workflowIds } from '../../src/shared/constants.js';
import type { StudyWorkflowInput } from '../../src/workflows/types.js';
import type { studyWorkflow } from '../../src/workflows/index.js';
import { createWorker } from '../../src/workers/worker.js';
import { startSandboxServers } from '../../sandbox/daemon.js';
import { inProcessSandboxControl, type SandboxControl } from '../../sandbox/scenarios.js';
import { makeKey, type SandboxServers } from '../activities/sandbox-pod.js';

export interface SandboxWorldOptions {
  /** Names the temp dir (`<name>-XXXXXX`) and every task queue (`<name>-<uuid>`). */
  name: string;
  /**
   * Worker env on top of the sandbox's, e.g. `TRANSFER_MAX_FILE_BYTES`; `POD_POLL_INTERVAL_MS` is 500 unless set here.
   */
  workerEnv?: Record<string, string>;
  /** Also start the team server stand-in (under `<dir>/team-server`), authorizing the world's key. Default false. */
  teamServer?: boolean;
  /** Start one worker on `taskQueue` now. Default true; with false, tests call `startWorker()` themselves. */
  worker?: boolean;
}

/** A production worker running in this process, on a task queue of its own. */
export interface SandboxWorker {
  worker: Worker;
  taskQueue: string;
  config: Env;
  /** `worker.run()`: settles once the worker has shut down. */
  running: Promise<void>;
}

export interface SandboxWorld {
  /** The temp dir: `id_ed25519` (+ `.pub`), `runpod/` (emulator data), `results/`, and `team-server/` if asked. */
  dir: string;
  resultsDir: string;
  keyPath: string;
  /** The one key the emulator accepts. */
  apiKey: string;
  /** The task queue of the worker started with the world (whether or not one was). */
  taskQueue: string;
  env: TestWorkflowEnvironment;
  client: Client;
  servers: SandboxServers;
  /** Faults and capacity of the in-process servers, as the named scenarios apply them. */
  control: SandboxControl;
  /** The worker started with the world; null with `worker: false`. */
  worker: SandboxWorker | null;
  /** Starts another worker on a fresh task queue; `stop()` shuts it down unless the test already did. */
  startWorker(): Promise<SandboxWorker>;
  /** Starts the study workflow under its readable id (`study-<study>`) on the world's task queue. */
  startStudy(input: StudyWorkflowInput): Promise<WorkflowHandle<typeof studyWorkflow>>;
  /** Closes workers, servers and the environment, then removes the dir; throws what failed once all are done. */
  stop(): Promise<void>;
}

/** Starts the world; if a part fails to start, what did start is closed before the error is thrown. */
export async function startSandboxWorld(opts: SandboxWorldOptions): Promise<SandboxWorld> {
  const dir = mkdtempSync(join(tmpdir(), `${opts.name}-`));
  const resultsDir = join(dir, 'results');
  const apiKey = `test-${randomUUID()}`;
  const taskQueue = `${opts.name}-${randomUUID()}`;
  const temporalAddress = inject('temporalAddress');
  // Newest first, like a compensation list: stop() runs them in order.
  const closers: { what: string; close: () => Promise<void> }[] = [
    { what: 'remove the temp dir', close: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })) },
  ];
  const stop = async () => {
    const errors: unknown[] = [];
    for (const c of closers.splice(0)) {
      try {
        await c.close();
      } catch (err) {
        errors.push(new Error(`sandbox world: ${c.what} failed`, { cause: err }));
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'sandbox world: several parts failed to close');
  };

  try {
    const keyPath = makeKey(dir);
    const env = await TestWorkflowEnvironment.createFromExistingServer({ address: temporalAddress });
    closers.unshift({ what: 'tear down the test environment', close: () => env.teardown() });
    const servers = await startSandboxServers({
      dataDir: join(dir, 'runpod'),
      apiKey,
      ...(opts.teamServer
        ? { teamServer: { dir: join(dir, 'team-server'), authorizedKeys: readFileSync(`${keyPath}.pub`, 'utf8') } }
        : {}),
    });
    closers.unshift(
      { what: 'close the RunPod emulator', close: () => servers.runpod.close() },
      { what: 'close the Hub', close: () => servers.hf.close() },
    );
    const { teamServer } = servers;
    if (teamServer) closers.unshift({ what: 'close the team server', close: () => teamServer.close() });

    const startWorker = async (queue = `${opts.name}-${randomUUID()}`): Promise<SandboxWorker> => {
      const config = loadConfig(
        {
          SANDBOX: 'true',
          TEMPORAL_ADDRESS: temporalAddress,
          TASK_QUEUE: queue,
          RUNPOD_API_KEY: apiKey,
          RUNPOD_BASE_URL: servers.runpod.url,
          HF_ENDPOINT: servers.hf.url,
          SSH_PRIVATE_KEY_PATH: keyPath,
          RESULTS_DIR: resultsDir,
          POD_POLL_INTERVAL_MS: '500',
          ...opts.workerEnv,
        },
        process.cwd(),
      );
      const worker = await createWorker(config, env.nativeConnection);
      const running = worker.run();
      closers.unshift({
        what: `shut down the worker on ${queue}`,
        close: async () => {
          // A test may have shut it down already (a worker that goes away is what it tests).
          if (worker.getState() === 'RUNNING') worker.shutdown();
          await running;
        },
      });
      return { worker, taskQueue: queue, config, running };
    };

    return {
      dir,
      resultsDir,
      keyPath,
      apiKey,
      taskQueue,
      env,
      client: env.client,
      servers,
      control: inProcessSandboxControl(servers),
      worker: opts.worker === false ? null : await startWorker(taskQueue),
      startWorker: () => startWorker(),
      startStudy: (input) =>
        env.client.workflow.start<typeof studyWorkflow>('studyWorkflow', {
          taskQueue,
          workflowId: workflowIds.study(input.study.study),
          args: [input],
        }),
      stop,
    };
  } catch (err) {
    const closed = await stop().then(
      () => [],
      (e: unknown) => [e],
    );
    if (closed.length) {
      throw new AggregateError([err, ...closed], 'sandbox world: failed to start, and to clean up', { cause: err });
    }
    throw err;
  }
}

/**
 * Polls `probe` every 250 ms until it returns a value (a condition, never a fixed sleep); fails naming `what`.
 * `ignoreProbeErrors` counts a probe that throws (a workflow not queryable yet) as "not yet".
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  opts: { timeoutMs?: number; ignoreProbeErrors?: boolean } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  const check = async () => {
    try {
      return await probe();
    } catch (err) {
      if (opts.ignoreProbeErrors) return undefined;
      throw err;
    }
  };
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
