import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { temporalWorkflowStatus } from '../activities/reaper/index.js';
import { createActivities } from '../activities/index.js';
import { AnalysisClient } from '../activities/analysis/index.js';
import { DEFAULT_HUB_URL, HubClient } from '../activities/hub/index.js';
import { openResultsStore } from '../activities/results/index.js';
import { SshPodConnector } from '../activities/ssh/index.js';
import { RunPodClient } from '../activities/runpod/index.js';
import { HarnessCheckClient } from '../activities/study/index.js';
import type { Env } from '../config.js';
import { temporalTarget } from '../shared/temporal-target.js';
import { PLAN_CACHE_DIR } from '../plan/plan-phase.js';
import { temporalWorkflowRunState } from './workflow-run-state.js';

/** The pod harness shipped to every pod (Python package `harness`). */
export const HARNESS_DIR = fileURLToPath(new URL('../../pod/harness', import.meta.url));
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** The composition root: config -> clients -> activities -> Worker. Nothing else constructs clients. */
export async function createWorker(config: Env, connection?: NativeConnection): Promise<Worker> {
  // The Temporal connection as the `temporal` CLI makes it: a temporal.toml profile, TEMPORAL_* variables over it.
  const target = temporalTarget(config.TEMPORAL_ENV, { profiles: !config.SANDBOX });
  const conn = connection ?? (await NativeConnection.connect(target.connectionOptions));
  const runpod = new RunPodClient({
    apiKey: config.RUNPOD_API_KEY ?? '',
    baseUrl: config.RUNPOD_BASE_URL,
    timeoutMs: config.RUNPOD_TIMEOUT_MS,
  });
  const connector = new SshPodConnector({
    privateKeyPath: config.SSH_PRIVATE_KEY_PATH,
    connectTimeoutMs: config.SSH_CONNECT_TIMEOUT_MS,
    reconnectBudgetMs: config.SSH_RECONNECT_BUDGET_MS,
  });
  // The reaper asks the server who owns a pod; a plain client connection, separate from the worker's.
  const temporal = new Client({
    // Lazy: the worker must start even before this connection is first needed.
    connection: Connection.lazy(target.connectionOptions),
    namespace: target.namespace,
  });
  const publicKey = readFileSync(config.SSH_PUBLIC_KEY_PATH ?? `${config.SSH_PRIVATE_KEY_PATH}.pub`, 'utf8').trim();
  // Model metadata (file list, sizes, sha256) for downloads; the token never leaves the worker.
  const hub = new HubClient({
    ...(config.HF_ENDPOINT ? { baseUrl: config.HF_ENDPOINT } : {}),
    ...(config.HF_TOKEN ? { token: config.HF_TOKEN } : {}),
  });
  // The decision packet, the report and imports: the Python analysis in the project's venv.
  const analysis = new AnalysisClient({
    python: resolve(config.PROJECT_ROOT, config.ANALYSIS_PYTHON),
    projectRoot: config.PROJECT_ROOT,
  });
  // The harness's own input checks, run on the worker before anything is reserved (standard-library Python).
  const harnessCheck = new HarnessCheckClient({
    python: resolve(config.PROJECT_ROOT, config.ANALYSIS_PYTHON),
    harnessDir: HARNESS_DIR,
  });
  const resultsDir = resolve(config.PROJECT_ROOT, config.RESULTS_DIR);
  // Several workers on one task queue share their results through this store; one worker needs none.
  const resultsStore = openResultsStore({
    resultsDir,
    url: config.RESULTS_STORE_URL,
    endpoint: config.RESULTS_STORE_ENDPOINT,
    region: config.RESULTS_STORE_REGION,
  });
  const activities = createActivities({
    runpod,
    analysis,
    harnessCheck,
    hub,
    connector,
    publicKey,
    workflowStatus: temporalWorkflowStatus(temporal),
    // The GPU lock on the team's server: a holder whose run is closed has left its lock behind.
    workflowRunState: temporalWorkflowRunState(temporal),
    projectRoot: config.PROJECT_ROOT,
    harnessDir: HARNESS_DIR,
    resultsDir,
    resultsStore,
    // The phase's preflight: the plan's read-only sources (Hub, catalog when there is a key, else the metadata file).
    planning: {
      projectRoot: config.PROJECT_ROOT,
      resultsDir,
      preflight: (input) => harnessCheck.preflight(input),
      hub: { client: hub, url: config.HF_ENDPOINT ?? DEFAULT_HUB_URL },
      catalog: config.RUNPOD_API_KEY ? { client: runpod, url: config.RUNPOD_BASE_URL } : null,
      cacheDir: resolve(config.PROJECT_ROOT, PLAN_CACHE_DIR),
      // The CodeCarbon pin of the harness this worker ships to pods.
      podRequirementsPath: resolve(HARNESS_DIR, '../requirements.txt'),
    },
    pollIntervalMs: config.POD_POLL_INTERVAL_MS,
    downloadStallTimeoutMs: config.DOWNLOAD_STALL_TIMEOUT_MS,
    // The pod is untrusted: what it may send home, at most.
    transferLimits: {
      maxFileBytes: config.TRANSFER_MAX_FILE_BYTES,
      maxFilesPerRun: config.TRANSFER_MAX_FILES_PER_RUN,
      maxSessionBytes: config.TRANSFER_MAX_SESSION_BYTES,
      maxJsonBytes: config.TRANSFER_MAX_JSON_BYTES,
      maxLogBytes: config.TRANSFER_MAX_LOG_BYTES,
    },
    ...(config.HF_ENDPOINT ? { hfEndpoint: config.HF_ENDPOINT } : {}),
    ...(config.HF_TOKEN ? { hfToken: config.HF_TOKEN } : {}),
    // For pod watchdogs: where a pod stops itself, and the key a study may opt in to copying onto its pods.
    runpodBaseUrl: config.RUNPOD_BASE_URL,
    ...(config.RUNPOD_API_KEY ? { runpodApiKey: config.RUNPOD_API_KEY } : {}),
  });
  return Worker.create({
    connection: conn,
    namespace: target.namespace,
    taskQueue: config.TASK_QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    activities,
    // Give in-flight activities a moment to notice cancellation and record a last heartbeat.
    shutdownGraceTime: '10s',
    // ...and never hang on one that ignores its cancellation: Temporal retries it on the next worker.
    shutdownForceTime: '30s',
  });
}
