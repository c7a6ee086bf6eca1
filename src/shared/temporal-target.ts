// Which Temporal the worker and the CLI talk to, the way the `temporal` CLI and every SDK decide it
// (@temporalio/envconfig): a profile of temporal.toml (TEMPORAL_PROFILE, else "default"; the file is
// TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml), overridden by TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and the TEMPORAL_TLS_* variables. Temporal Cloud is a profile (or those
// variables) with an API key or client certificates.
import { existsSync } from 'node:fs';
import { loadClientConnectConfig, type ClientConnectConfig } from '@temporalio/envconfig';
import { ConfigError, temporalConnectionEnv } from '../config.js';

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** For `NativeConnection.connect` (the worker) and `Connection.connect` (clients): address, TLS, API key, metadata. */
  connectionOptions: ClientConnectConfig['connectionOptions'] & { address: string };
  /** Where the settings came from, for error messages: `profile cloud of /path/temporal.toml`, or `environment`. */
  source: string;
  /** Whether the connection uses TLS (an API key implies it). */
  tls: boolean;
}

/** The target from the `TEMPORAL_*` variables (and the profile file they name); throws ConfigError naming the problem. */
export function temporalTarget(
  env: Record<string, string | undefined>,
  opts: { profiles: boolean } = { profiles: true },
): TemporalTarget {
  const vars = temporalConnectionEnv(env);
  // A file named on purpose must be there; the default location is optional (envconfig skips it when absent).
  const file = opts.profiles ? vars.TEMPORAL_CONFIG_FILE : undefined;
  if (file !== undefined && !existsSync(file))
    throw new ConfigError(`TEMPORAL_CONFIG_FILE=${file} does not exist (a temporal.toml with your profiles)`);
  let loaded: ClientConnectConfig;
  try {
    // The sandbox's own dev server takes no profile: a Temporal Cloud default profile must not reach it.
    loaded = loadClientConnectConfig({ overrideEnvVars: vars, disableFile: !opts.profiles });
  } catch (err) {
    throw new ConfigError(
      `cannot load the Temporal connection settings${vars.TEMPORAL_PROFILE ? ` (profile ${vars.TEMPORAL_PROFILE})` : ''}: ` +
        (err instanceof Error ? err.message : String(err)),
    );
  }
  const address = loaded.connectionOptions.address ?? DEFAULT_TEMPORAL_ADDRESS;
  const profile = vars.TEMPORAL_PROFILE ?? 'default';
  const where = file ?? '~/.config/temporalio/temporal.toml';
  return {
    address,
    namespace: loaded.namespace ?? DEFAULT_TEMPORAL_NAMESPACE,
    connectionOptions: { ...loaded.connectionOptions, address },
    source:
      opts.profiles && (vars.TEMPORAL_PROFILE || file)
        ? `profile ${profile} of ${where}, then the environment`
        : 'the environment',
    tls: loaded.connectionOptions.tls !== undefined && loaded.connectionOptions.tls !== false,
  };
}
