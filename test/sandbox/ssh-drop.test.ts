// The reconnecting SSH shell against a real sandbox pod (sshd) whose connections are cut again and again: every
// exec and SFTP transfer completes, none hangs. (ssh2 never answers an SFTP request whose connection went away; the
// shell must notice the close itself.)
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReconnectingPodShell } from '../../src/activities/ssh/index.js';
import { startSandboxServers } from '../../sandbox/daemon.js';
import {
  connector,
  createSandboxPod,
  makeKey,
  type SandboxPod,
  type SandboxServers,
} from '../activities/sandbox-pod.js';

describe('SSH to a pod whose connections keep dropping', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssh-drop-'));
  const apiKey = `test-${randomUUID()}`;
  let servers: SandboxServers;
  let keyPath: string;
  let pod: SandboxPod;

  beforeAll(async () => {
    servers = await startSandboxServers({ dataDir: join(dir, 'runpod'), apiKey });
    keyPath = makeKey(dir);
    pod = await createSandboxPod(servers, { apiKey, keyPath, name: `gpustudy--t--p--m--${randomUUID().slice(0, 8)}` });
  });

  afterAll(async () => {
    await servers?.runpod.close();
    await servers?.hf.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reconnects and completes every exec, SFTP write and SFTP read', async () => {
    const sh = await ReconnectingPodShell.open(connector(keyPath), pod.endpoint.ssh);
    let cutting = true;
    let cuts = 0;
    const cutter = (async () => {
      while (cutting) {
        await new Promise((r) => setTimeout(r, 700 + Math.random() * 800));
        servers.runpod.injectFault({ type: 'pod', podId: pod.id, effect: 'ssh-drop' });
        cuts += 1;
      }
    })();
    try {
      const remote = `${pod.endpoint.workspaceDir}/drop-test.txt`;
      const local = join(dir, 'back.txt');
      const started = Date.now();
      for (let i = 0; Date.now() - started < 12_000 || cuts < 5; i++) {
        const content = `round ${i} `.repeat(2_000);
        const r = await sh.exec(`echo ${i}`, { timeoutMs: 30_000 });
        expect(r.stdout.trim()).toBe(String(i));
        await sh.writeFile(remote, content);
        await sh.getFile(remote, local);
        expect(readFileSync(local, 'utf8')).toBe(content);
      }
    } finally {
      cutting = false;
      await cutter;
      sh.close();
    }
    expect(cuts).toBeGreaterThanOrEqual(5);
    expect(sh.reconnects).toBeGreaterThanOrEqual(1);
  });
});
