// The sandbox daemon: the RunPod emulator (pods are real sshd on loopback) and the Hugging Face file server in
// one long-lived process. `sandbox/services.ts` starts it detached; it writes `<dir>/daemon.json` when ready.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startHfServer } from './hf-server/index.js';
import { startRunPodEmulator } from './runpod-emulator/index.js';
import type { DaemonInfo } from './services.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What a sandbox pod finds on its PATH: the simulated `vllm`, and the venv's python3 and `hf`. */
export function sandboxPodPath(rootDir: string): string {
  return [resolve(rootDir, 'sandbox/vllm-sim/bin'), resolve(rootDir, '.venv/bin')].join(':');
}

/** Starts both servers; the caller owns closing them. */
export async function startSandboxServers(opts: {
  dataDir: string;
  rootDir?: string;
  apiKey: string;
  log?: (l: string) => void;
}) {
  const rootDir = opts.rootDir ?? ROOT;
  const hf = await startHfServer({ ...(opts.log ? { log: opts.log } : {}) });
  const runpod = await startRunPodEmulator({
    dataDir: opts.dataDir,
    apiKeys: [opts.apiKey],
    podPathPrefix: sandboxPodPath(rootDir),
    // Simulated vLLM: quick start, fast tokens, so a sandbox phase takes minutes, not hours.
    podEnv: { VLLM_SIM_STARTUP_DELAY_S: '2', VLLM_SIM_TOKENS_PER_S: '400' },
    timeline: { provisioningDelayMs: 1500, startingDelayMs: 1500, imagePullDelayMs: 2000, portDelayMs: 1000 },
    // The spec's example quota (60/min) would throttle a worker polling several pods each second.
    rateLimits: { minute: 600 },
    ...(opts.log ? { log: opts.log } : {}),
  });
  return { hf, runpod };
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
  const { hf, runpod } = await startSandboxServers({ dataDir: join(dir, 'runpod'), apiKey, log });
  const info: DaemonInfo = {
    pid: process.pid,
    runpodUrl: runpod.url,
    controlUrl: runpod.controlUrl,
    hfUrl: hf.url,
    apiKey,
  };
  writeFileSync(join(dir, 'daemon.json'), JSON.stringify(info, null, 2));
  log(`sandbox daemon ready: RunPod emulator ${runpod.url}, HF ${hf.url}`);

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    log('shutting down: terminating emulated pods');
    rmSync(join(dir, 'daemon.json'), { force: true });
    await runpod.close();
    await hf.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
