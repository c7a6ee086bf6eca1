// The sandbox's stand-in for the team's own GPU server (phase 1's `ssh-host` target): one long-lived OpenSSH sshd on
// loopback with a host key kept for its directory, the sandbox's key authorized, the pods' PATH (simulated vLLM, the
// venv's python3 and hf) and a workspace.
//
// Its four GPUs are a list file the GPU lock reads (GPUSTUDY_SIMULATED_GPUS), not a fake nvidia-smi on its PATH: the
// harness records nvidia-smi's GPUs as the run's hardware (environment.json `gpu.present`, name, memory), and the
// manifest would then claim an RTX A5000 for a run that had no GPU. Without nvidia-smi the harness says "no NVIDIA GPU
// here" and reports no GPU energy, which is the truth.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import {
  assertOpenSshInstalled,
  DEFAULT_SSH_KEYGEN_PATH,
  DEFAULT_SSHD_PATH,
  hostKeySha256,
  killStaleSshd,
  podPaths,
  SshdManager,
  type SshdHandle,
} from './runpod-emulator/sshd.js';

const execFileAsync = promisify(execFile);

/** What the daemon's info (daemon.json) says about the team server; `sandboxStudy` puts it into the study. */
export const TeamServerInfoSchema = z.object({
  host: z.string(),
  port: z.number().int(),
  /** The OS user the sandbox runs as (sshd logs it in as itself). */
  username: z.string(),
  /** `SHA256:...` as `ssh-keygen -lf` prints it; the same for the `.sandbox` directory across restarts. */
  hostKeySha256: z.string(),
  workspaceDir: z.string(),
  /** The lock root of the stand-in's GPUs (its own: another sandbox's GPU 0 is another GPU). */
  gpuLockDir: z.string(),
});
export type TeamServerInfo = z.infer<typeof TeamServerInfoSchema>;

export interface SimulatedGpu {
  index: number;
  name: string;
  memoryMiB: number;
}

/** The design's team server: 4x RTX A5000 24 GB (nvidia-smi reports 24564 MiB each). */
export const TEAM_SERVER_GPUS: SimulatedGpu[] = [0, 1, 2, 3].map((index) => ({
  index,
  name: 'NVIDIA RTX A5000',
  memoryMiB: 24564,
}));

export interface TeamServer {
  info: TeamServerInfo;
  /** Stops the sshd and everything its sessions started (vLLM, harness). The directory (host key, workspace) stays. */
  close(): Promise<void>;
}

export interface TeamServerOptions {
  /** Its directory (`.sandbox/team-server`): host key, sshd files, workspace, home, GPU list, lock root. */
  dir: string;
  /** Prepended to PATH in its sessions: the emulated pods' (`sandboxPodPath`: simulated vllm, the venv). */
  pathPrefix: string;
  /** authorized_keys content: the sandbox worker's public key. */
  authorizedKeys: string;
  /** Extra session environment (the simulated vLLM's knobs, as on emulated pods). */
  env?: Record<string, string>;
  gpus?: SimulatedGpu[];
  sshdPath?: string;
  sshKeygenPath?: string;
  log?: (line: string) => void;
}

/**
 * Starts the team server's sshd on loopback (the port of its last start when free, so workflows started before a
 * daemon restart still reach it; else a free one). Kills what a previous owner left running in this directory.
 */
export async function startTeamServer(opts: TeamServerOptions): Promise<TeamServer> {
  const log = opts.log ?? (() => undefined);
  const sshdPath = opts.sshdPath ?? DEFAULT_SSHD_PATH;
  const sshKeygenPath = opts.sshKeygenPath ?? DEFAULT_SSH_KEYGEN_PATH;
  await assertOpenSshInstalled({ sshdPath, sshKeygenPath });
  const dir = resolve(opts.dir);
  const p = podPaths(dir);
  const gpuLockDir = join(dir, 'gpu-locks');
  const gpuList = join(dir, 'gpus.csv');
  const portFile = join(dir, 'port');
  // Unique per directory: stop() ends exactly this server's processes, never another sandbox's.
  const marker = `GPUSTUDY_TEAM_SERVER=${dir}`;
  killStaleSshd(dir, marker, log);
  await Promise.all([p.workspace, p.home, gpuLockDir].map((d) => mkdir(d, { recursive: true })));
  // Generated once: the study pins it, and a restarted daemon must present the same key.
  if (!existsSync(p.hostKey)) {
    await execFileAsync(sshKeygenPath, [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'gpustudy-sandbox-team-server',
      '-f',
      p.hostKey,
    ]);
  }
  const fingerprint = hostKeySha256(dir);
  if (!fingerprint) throw new Error(`team server: no host key in ${dir}`);
  // nvidia-smi's `--query-gpu=index,name,memory.total --format=csv,noheader,nounits` form.
  await writeFile(
    gpuList,
    (opts.gpus ?? TEAM_SERVER_GPUS).map((g) => `${g.index}, ${g.name}, ${g.memoryMiB}\n`).join(''),
  );
  const env: [string, string][] = [
    ...Object.entries(opts.env ?? {}),
    // Its own home: the login user's ~/.bashrc must not leak into sessions.
    ['HOME', p.home],
    ['GPUSTUDY_SIMULATED_GPUS', gpuList],
    ['GPUSTUDY_TEAM_SERVER', dir],
    ['PATH', `${opts.pathPrefix}:/usr/local/bin:/usr/bin:/bin`],
  ];
  const sshd = new SshdManager({ sshdPath, sshKeygenPath, log });
  const start = (port?: number): Promise<SshdHandle> =>
    sshd.start({
      podId: 'team-server',
      dir,
      authorizedKeys: opts.authorizedKeys,
      env,
      processMarker: marker,
      ...(port === undefined ? {} : { port }),
    });
  const lastPort = Number((await readFile(portFile, 'utf8').catch(() => '')).trim());
  let handle: SshdHandle;
  try {
    handle = Number.isInteger(lastPort) && lastPort > 0 ? await start(lastPort) : await start();
  } catch {
    handle = await start();
  }
  await writeFile(portFile, String(handle.port));
  log(`team server (${(opts.gpus ?? TEAM_SERVER_GPUS).length} simulated GPUs) listening on 127.0.0.1:${handle.port}`);
  return {
    info: {
      host: '127.0.0.1',
      port: handle.port,
      username: userInfo().username,
      hostKeySha256: fingerprint,
      workspaceDir: p.workspace,
      gpuLockDir,
    },
    close: () => sshd.stopAll(),
  };
}
