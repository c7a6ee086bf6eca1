// The emulator's 'sftp-broken' pod fault against real sshd: SSH exec keeps working while SFTP is refused, an sshd
// restart for another reason keeps SFTP off, and a container restart (start after stop, or restart) brings it back with
// the workspace intact.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunPodClient, podSshEndpoint } from '../../src/activities/runpod/index.js';
import { SshError, type PodShell } from '../../src/activities/ssh/index.js';
import { startRunPodEmulator, type RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import { connector, createdPodWithSsh, pinned, until } from '../activities/sandbox-pod.js';

const API_KEY = 'sftp-broken-key';
const dir = mkdtempSync(join(tmpdir(), 'sftp-broken-'));
const keyPath = join(dir, 'id_ed25519');
/** Waits here restart sshd processes, slower on a busy machine. */
const WAIT_MS = 30_000;
let emu: RunPodEmulator;
let client: RunPodClient;
let publicKey: string;

beforeAll(async () => {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
  publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
  emu = await startRunPodEmulator({
    apiKeys: [API_KEY],
    timeline: { provisioningDelayMs: 50, startingDelayMs: 50, imagePullDelayMs: 50, portDelayMs: 50 },
  });
  client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
});

afterAll(async () => {
  for (const p of emu?.pods() ?? []) await client.deletePod(p.id);
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

const internals = (podId: string) => emu.pods().find((p) => p.id === podId);

/** `POST /pods/{id}/action` on the REST API, as RunPod's console would send it. */
async function action(podId: string, act: 'start' | 'stop' | 'restart'): Promise<void> {
  const res = await fetch(`${emu.url}/pods/${podId}/action`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ action: act }),
  });
  expect(res.status, await res.text()).toBe(200);
}

/** Waits until the API lists the pod RUNNING with its SSH port, then connects with the pod's host key pinned. */
async function connectWhenRunning(podId: string): Promise<PodShell> {
  const ssh = await until(
    `pod ${podId} RUNNING with SSH`,
    async () => {
      const pod = await client.getPod(podId);
      return (pod && podSshEndpoint(pod)) || undefined;
    },
    WAIT_MS,
  );
  return connector(keyPath).connect(pinned(emu, podId, ssh));
}

/** Waits until the pod's sshd listener is another process than `pid` (a restart in place has finished). */
function sshdReplaced(podId: string, pid: number | null | undefined): Promise<number> {
  return until(
    `pod ${podId}: sshd restarted`,
    () => {
      const now = internals(podId)?.sshdPid;
      return now !== null && now !== undefined && now !== pid ? now : undefined;
    },
    WAIT_MS,
  );
}

/** The error an SFTP operation fails with (a fresh connection: ssh2-shell keeps one SFTP session per connection). */
async function sftpError(podId: string, path: string): Promise<unknown> {
  const sh = await connectWhenRunning(podId);
  try {
    return await sh.lstat(path).then(
      () => null,
      (e: unknown) => e,
    );
  } finally {
    sh.close();
  }
}

describe("the 'sftp-broken' pod fault", () => {
  it('refuses SFTP on an existing pod while exec works, until a stop and start; the workspace survives', async () => {
    const { podId } = await createdPodWithSsh({
      client,
      name: 'gpustudy--sftp--p--m--t1-r0',
      publicKey,
      timeoutMs: WAIT_MS,
    });
    const ws = internals(podId)!.workspaceDir;
    const kept = join(ws, 'kept.txt');
    const before = await connectWhenRunning(podId);
    try {
      expect((await before.exec(`printf 'written before the stop' > '${kept}'`)).code).toBe(0);
      expect(await before.lstat(kept)).toEqual({ kind: 'file', bytes: 23 });
    } finally {
      before.close();
    }

    const pidBefore = internals(podId)?.sshdPid;
    emu.injectFault({ type: 'pod', effect: 'sftp-broken', podId });
    expect(internals(podId)?.faults.sftpBroken).toBe(true);
    await sshdReplaced(podId, pidBefore);

    const broken = await connectWhenRunning(podId);
    try {
      const r = await broken.exec('echo ok');
      expect({ code: r.code, stdout: r.stdout.trim() }).toEqual({ code: 0, stdout: 'ok' });
      const lstatErr = await broken.lstat(kept).then(
        () => null,
        (e: unknown) => e,
      );
      expect(lstatErr).toBeInstanceOf(SshError);
      expect((lstatErr as SshError).kind).toBe('sftp');
      await expect(broken.getFile(kept, join(dir, 'never.txt'))).rejects.toBeInstanceOf(SshError);
      // Exec still works on the same connection after the refused subsystem.
      expect((await broken.exec(`cat '${kept}'`)).stdout).toBe('written before the stop');
    } finally {
      broken.close();
    }

    await action(podId, 'stop');
    await until('EXITED', async () => ((await client.getPod(podId))?.status === 'EXITED' ? true : undefined));
    // Stopped, the fault is still on the pod: only the next container start clears it.
    expect(internals(podId)?.faults.sftpBroken).toBe(true);
    await action(podId, 'start');
    expect(internals(podId)?.faults.sftpBroken).toBe(false);

    const healed = await connectWhenRunning(podId);
    try {
      expect(await healed.lstat(kept)).toEqual({ kind: 'file', bytes: 23 });
      const local = join(dir, 'kept.txt');
      await healed.getFile(kept, local);
      expect(readFileSync(local, 'utf8')).toBe('written before the stop');
    } finally {
      healed.close();
    }
  });

  it('applies to the next created pod, survives another sshd restart, and ends with a restart', async () => {
    emu.injectFault({ type: 'pod', effect: 'sftp-broken', namePrefix: 'gpustudy--sftpnext--' });
    const { podId } = await createdPodWithSsh({
      client,
      name: 'gpustudy--sftpnext--p--m--t1-r0',
      publicKey,
      timeoutMs: WAIT_MS,
    });
    const ws = internals(podId)!.workspaceDir;
    expect(internals(podId)?.faults.sftpBroken).toBe(true);
    expect(await sftpError(podId, ws)).toBeInstanceOf(SshError);

    // Another fault restarts the pod's sshd in place (new session PATH): SFTP stays off.
    const pidBefore = internals(podId)?.sshdPid;
    emu.injectFault({ type: 'pod', effect: 'hostile-results', podId });
    await sshdReplaced(podId, pidBefore);
    const sh = await connectWhenRunning(podId);
    try {
      expect((await sh.exec('echo ok')).stdout.trim()).toBe('ok');
      await expect(sh.lstat(ws)).rejects.toBeInstanceOf(SshError);
    } finally {
      sh.close();
    }

    const pidRunning = internals(podId)?.sshdPid;
    await action(podId, 'restart');
    expect(internals(podId)?.faults.sftpBroken).toBe(false);
    await sshdReplaced(podId, pidRunning);
    expect(await sftpError(podId, ws)).toBeNull();
  });
});
