// Standalone emulator: `tsx sandbox/runpod-emulator/main.ts --port 8787 --data-dir .sandbox/runpod`.
import { parseArgs } from 'node:util';
import { startRunPodEmulator } from './index.js';
import type { RunPodEmulatorOptions } from './index.js';

const USAGE = `Usage: tsx sandbox/runpod-emulator/main.ts [options]
  --port N                      TCP port on 127.0.0.1 (default 0: any free port)
  --data-dir DIR                pod directories (default: a temp dir removed on exit)
  --api-key KEY                 accepted API key, repeatable (default: any bearer token)
  --schema-mode newest|strict-2.9
  --status-mode spec|observed
  --path-prefix DIRS            prepended to PATH in pod SSH sessions (colon-separated)
  --env NAME=VALUE              extra pod session environment, repeatable (e.g. HF_ENDPOINT=...)
  --ssh-key "ssh-ed25519 ..."   initial account SSH key, repeatable
  --provisioning-delay-ms N, --starting-delay-ms N, --image-pull-delay-ms N, --port-delay-ms N
  --rate-minute N, --rate-hour N, --rate-day N
  --no-bill-provisioning        PROVISIONING/STARTING do not accrue cost
  --seed N                      seed pod ids and ports
  --quiet                       no diagnostic log lines`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'api-key': { type: 'string', multiple: true },
      'schema-mode': { type: 'string' },
      'status-mode': { type: 'string' },
      'path-prefix': { type: 'string' },
      env: { type: 'string', multiple: true },
      'ssh-key': { type: 'string', multiple: true },
      'provisioning-delay-ms': { type: 'string' },
      'starting-delay-ms': { type: 'string' },
      'image-pull-delay-ms': { type: 'string' },
      'port-delay-ms': { type: 'string' },
      'rate-minute': { type: 'string' },
      'rate-hour': { type: 'string' },
      'rate-day': { type: 'string' },
      'no-bill-provisioning': { type: 'boolean' },
      seed: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const num = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
    return n;
  };
  const oneOf = <T extends string>(v: string | undefined, allowed: readonly T[], name: string): T | undefined => {
    if (v === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(v)) throw new Error(`--${name} must be one of ${allowed.join(', ')}`);
    return v as T;
  };
  const podEnv: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--env expects NAME=VALUE, got '${kv}'`);
    podEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const timeline = Object.fromEntries(
    (
      [
        ['provisioningDelayMs', 'provisioning-delay-ms'],
        ['startingDelayMs', 'starting-delay-ms'],
        ['imagePullDelayMs', 'image-pull-delay-ms'],
        ['portDelayMs', 'port-delay-ms'],
      ] as const
    )
      .map(([key, flag]) => [key, num(values[flag], flag)] as const)
      .filter(([, v]) => v !== undefined),
  );
  const rateLimits = Object.fromEntries(
    (['minute', 'hour', 'day'] as const)
      .map((w) => [w, num(values[`rate-${w}`], `rate-${w}`)] as const)
      .filter(([, v]) => v !== undefined),
  );
  const options: RunPodEmulatorOptions = {
    port: num(values.port, 'port') ?? 0,
    ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
    ...(values['api-key'] ? { apiKeys: values['api-key'] } : {}),
    ...(values['ssh-key'] ? { accountSshKeys: values['ssh-key'] } : {}),
    schemaMode: oneOf(values['schema-mode'], ['newest', 'strict-2.9'] as const, 'schema-mode') ?? 'newest',
    statusMode: oneOf(values['status-mode'], ['spec', 'observed'] as const, 'status-mode') ?? 'spec',
    podPathPrefix: values['path-prefix'] ?? '',
    podEnv,
    timeline,
    rateLimits,
    billProvisioning: !values['no-bill-provisioning'],
    ...(values.seed !== undefined ? { seed: num(values.seed, 'seed') } : {}),
    log: values.quiet ? () => undefined : (line) => console.error(`[runpod-emulator] ${line}`),
  };
  const emulator = await startRunPodEmulator(options);
  console.log(JSON.stringify({ url: emulator.url, controlUrl: emulator.controlUrl, dataDir: emulator.dataDir }));

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.error(`[runpod-emulator] ${signal}: stopping pods`);
    emulator.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  console.error(USAGE);
  process.exit(1);
});
