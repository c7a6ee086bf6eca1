// The sandbox daemon: the RunPod emulator (pods are real sshd on loopback), the Hugging Face file server and the team
// server stand-in (one sshd with four simulated GPUs) in one long-lived process. `sandbox/services.ts` starts it
// detached; it writes `<dir>/daemon.json` when ready.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startHfServer } from './hf-server/index.js';
import { startRunPodEmulator } from './runpod-emulator/index.js';
import type { DaemonInfo } from './services.js';
import { startTeamServer, type TeamServer } from './team-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What a sandbox pod finds on its PATH: the simulated `vllm`, and the venv's python3 and `hf`. */
export function sandboxPodPath(rootDir: string): string {
  return [resolve(rootDir, 'sandbox/vllm-sim/bin'), resolve(rootDir, '.venv/bin')].join(':');
}

/** Simulated vLLM on sandbox machines: quick start, fast tokens, so a sandbox phase takes minutes, not hours. */
const SANDBOX_MACHINE_ENV = { VLLM_SIM_STARTUP_DELAY_S: '2', VLLM_SIM_TOKENS_PER_S: '400' };

/**
 * Starts the servers; the caller owns closing them. With `teamServer`, also the team server stand-in (its directory
 * and the key it authorizes), else `teamServer` is null.
 */
export async function startSandboxServers(opts: {
  dataDir: string;
  rootDir?: string;
  apiKey: string;
  teamServer?: { dir: string; authorizedKeys: string };
  log?: (l: string) => void;
}): Promise<{
  hf: Awaited<ReturnType<typeof startHfServer>>;
  runpod: Awaited<ReturnType<typeof startRunPodEmulator>>;
  teamServer: TeamServer | null;
}> {
  const rootDir = opts.rootDir ?? ROOT;
  const hf = await startHfServer({ ...(opts.log ? { log: opts.log } : {}) });
  const runpod = await startRunPodEmulator({
    dataDir: opts.dataDir,
    apiKeys: [opts.apiKey],
    podPathPrefix: sandboxPodPath(rootDir),
    podEnv: SANDBOX_MACHINE_ENV,
    timeline: { provisioningDelayMs: 1500, startingDelayMs: 1500, imagePullDelayMs: 2000, portDelayMs: 1000 },
    // The spec's example quota (60/min) would throttle a worker polling several pods each second.
    rateLimits: { minute: 600 },
    ...(opts.log ? { log: opts.log } : {}),
  });
  let teamServer: TeamServer | null = null;
  try {
    if (opts.teamServer) {
      teamServer = await startTeamServer({
        ...opts.teamServer,
        pathPrefix: sandboxPodPath(rootDir),
        env: SANDBOX_MACHINE_ENV,
        ...(opts.log ? { log: opts.log } : {}),
      });
    }
  } catch (err) {
    // The caller gets nothing to close: close what did start.
    await runpod.close();
    await hf.close();
    throw err;
  }
  return { hf, runpod, teamServer };
}

async function main() {
  const { values } = parseArgs({ options: { dir: { type: 'string', default: resolve(ROOT, '.sandbox') } } });
  const dir = resolve(values.dir);
  mkdirSync(dir, { recursive: true });
  // One key per sandbox directory, so a restarted daemon accepts the key a running worker already has.
  const keyFile = join(dir, 'runpod-api-key');
  if (!existsSync(keyFile)) writeFileSync(keyFile, `sandbox-${randomBytes(12).toString('hex')}`, { mode: 0o600 });
  const apiKey = readFileSync(keyFile, 'utf8').trim();
  const log = (l: string) => console.log(`${new Date().toISOString()} ${l}`);
  // The team server authorizes the sandbox worker's key (services.ts creates it before starting the daemon).
  const publicKey = join(dir, 'ssh', 'id_ed25519.pub');
  if (!existsSync(publicKey))
    throw new Error(`sandbox daemon: no ${publicKey} (start the sandbox with npm run sandbox -- up)`);
  const { hf, runpod, teamServer } = await startSandboxServers({
    dataDir: join(dir, 'runpod'),
    apiKey,
    teamServer: { dir: join(dir, 'team-server'), authorizedKeys: readFileSync(publicKey, 'utf8') },
    log,
  });
  if (!teamServer) throw new Error('sandbox daemon: the team server did not start');
  const info: DaemonInfo = {
    pid: process.pid,
    runpodUrl: runpod.url,
    controlUrl: runpod.controlUrl,
    hfUrl: hf.url,
    apiKey,
    teamServer: teamServer.info,
  };
  writeFileSync(join(dir, 'daemon.json'), JSON.stringify(info, null, 2));
  log(
    `sandbox daemon ready: RunPod emulator ${runpod.url}, HF ${hf.url}, team server ` +
      `${teamServer.info.host}:${teamServer.info.port} (${teamServer.info.hostKeySha256})`,
  );

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    log('shutting down: terminating emulated pods');
    rmSync(join(dir, 'daemon.json'), { force: true });
    await runpod.close();
    await teamServer.close();
    await hf.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
