import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** S3's limit for one PutObject. */
const S3_MAX_PUT_BYTES = 5 * GiB;

/** The worker's and CLI's environment. Secrets live here and only here, never in workflow inputs. */
export const EnvSchema = z.object({
  /**
   * The Temporal connection (read through @temporalio/envconfig, as the `temporal` CLI does: src/shared/temporal-target.ts):
   * a profile of temporal.toml, overridden by these. Unset: 127.0.0.1:7233, namespace default.
   */
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).optional(),
  TEMPORAL_PROFILE: z.string().min(1).optional(),
  TEMPORAL_CONFIG_FILE: z.string().min(1).optional(),
  /** Temporal Cloud's API key (implies TLS). */
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS: z.string().optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  /** Web UI base, printed next to workflow ids. */
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  /** The one task queue: the worker polls it and the CLI starts workflows and schedules on it. */
  TASK_QUEUE: z.string().min(1).default('gpu-study'),

  RUNPOD_API_KEY: z.string().min(1).optional(),
  RUNPOD_BASE_URL: z.url().default('https://api.runpod.io/v2'), // REST v2; v1 retired 2026-11-15
  RUNPOD_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),

  /** Private key the worker logs in to pods with; its `.pub` twin is sent as the pod's PUBLIC_KEY. */
  SSH_PRIVATE_KEY_PATH: z.string().min(1).optional(),
  SSH_PUBLIC_KEY_PATH: z.string().min(1).optional(),
  SSH_CONNECT_TIMEOUT_MS: z.coerce.number().int().positive().default(20_000),
  /** How long one SSH operation keeps reconnecting after its connection dropped (backoff 0.25 s doubling to 8 s). */
  SSH_RECONNECT_BUDGET_MS: z.coerce.number().int().min(0).default(60_000),

  /** Passed to `hf download` on the pod; unset means huggingface.co. */
  HF_ENDPOINT: z.url().optional(),
  HF_TOKEN: z.string().min(1).optional(),

  /** Where the worker resolves study-relative files (dataset, prompts) and writes results. */
  PROJECT_ROOT: z.string().min(1).optional(),
  RESULTS_DIR: z.string().min(1).default('results'),
  /**
   * `s3://bucket/prefix`: a store every worker shares, with RESULTS_DIR as each worker's working copy. Needed when
   * several workers poll one task queue (a session's activities run on any of them). Unset: RESULTS_DIR alone.
   * Credentials come from the AWS SDK's usual sources (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile).
   */
  RESULTS_STORE_URL: z
    .string()
    .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 's3://bucket or s3://bucket/prefix')
    .optional(),
  /** An S3-compatible endpoint (MinIO, Ceph, versitygw, R2); unset means AWS S3 itself. */
  RESULTS_STORE_ENDPOINT: z.url().optional(),
  RESULTS_STORE_REGION: z.string().min(1).default('us-east-1'),
  /** Python with analysis/requirements.txt (the decision packet, the report, imports); relative to PROJECT_ROOT. */
  ANALYSIS_PYTHON: z.string().min(1).default('.venv/bin/python'),

  /** Poll interval of long pod-side steps (download, vLLM start, inference). */
  POD_POLL_INTERVAL_MS: z.coerce.number().int().positive().default(5_000),
  /** No byte written for this long: kill the download, resume with Xet off (study `download.stallTimeoutMs` wins). */
  DOWNLOAD_STALL_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .positive()
    .default(5 * 60_000),

  /**
   * What the worker brings home from a pod (untrusted: a community host, any image). Over a limit, a transfer fails
   * with the file, its size and the setting to raise; a log is cut to its last TRANSFER_MAX_LOG_BYTES instead.
   */
  TRANSFER_MAX_FILE_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(2 * GiB),
  TRANSFER_MAX_FILES_PER_RUN: z.coerce.number().int().positive().default(64),
  TRANSFER_MAX_SESSION_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(20 * GiB),
  /** JSON files the worker parses (environment.json, metrics.json). */
  TRANSFER_MAX_JSON_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(8 * MiB),
  TRANSFER_MAX_LOG_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(64 * MiB),

  /** The embedded sandbox: emulated RunPod, local HF server, simulated vLLM. */
  SANDBOX: z.stringbool().default(false),
});

export type Env = z.infer<typeof EnvSchema> & {
  SSH_PRIVATE_KEY_PATH: string;
  PROJECT_ROOT: string;
  /** What the Temporal connection is made from (every TEMPORAL_* variable, HOME): `temporalTarget(config.TEMPORAL_ENV)`. */
  TEMPORAL_ENV: Record<string, string>;
};

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Pure: the same env and cwd always give the same config. Fails with every problem named. Only what talks to
 * RunPod (the worker, starting a real run) needs the API key; gate and status commands do not.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv,
  cwd: string = process.cwd(),
  opts = { requireRunPodKey: true },
): Env {
  const r = EnvSchema.safeParse(env);
  if (!r.success) throw new ConfigError(`invalid environment:\n${z.prettifyError(r.error)}`);
  if (opts.requireRunPodKey && !r.data.SANDBOX && !r.data.RUNPOD_API_KEY) {
    throw new ConfigError('RUNPOD_API_KEY is not set: a real run needs a RunPod API key (or use --sandbox).');
  }
  // The store uploads each file in one PUT, which S3 caps at 5 GiB: a larger file could come home but not be shared.
  if (r.data.RESULTS_STORE_URL && r.data.TRANSFER_MAX_FILE_BYTES > S3_MAX_PUT_BYTES) {
    throw new ConfigError(
      `TRANSFER_MAX_FILE_BYTES is ${r.data.TRANSFER_MAX_FILE_BYTES}, over the 5 GiB a results store (RESULTS_STORE_URL) ` +
        'takes in one upload: lower it to at most 5368709120',
    );
  }
  return {
    ...r.data,
    SSH_PRIVATE_KEY_PATH: r.data.SSH_PRIVATE_KEY_PATH ?? `${env.HOME ?? ''}/.ssh/id_ed25519`,
    PROJECT_ROOT: r.data.PROJECT_ROOT ?? cwd,
    TEMPORAL_ENV: temporalConnectionEnv(env),
  };
}

/** Where the user's config directory is (for the default temporal.toml) on Linux, macOS and Windows. */
const CONFIG_DIR_VARS = ['HOME', 'XDG_CONFIG_HOME', 'APPDATA'];

/** The variables the connection is made from: every `TEMPORAL_*` one, and those that locate the default file. */
export function temporalConnectionEnv(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(
      (e): e is [string, string] =>
        (e[0].startsWith('TEMPORAL_') || CONFIG_DIR_VARS.includes(e[0])) && e[1] !== undefined,
    ),
  );
}

/**
 * Loads `<dir>/.env` into process.env when the file exists (as .env.example describes), never overriding a variable
 * the environment already has. Called by the entry points only, before loadConfig; loadConfig stays pure.
 */
export function loadDotEnv(dir: string): string | null {
  const path = join(dir, '.env');
  if (!existsSync(path)) return null;
  process.loadEnvFile(path);
  return path;
}
