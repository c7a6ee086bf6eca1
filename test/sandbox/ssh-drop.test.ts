// The reconnecting SSH shell against a real sandbox pod (sshd) whose connections are cut again and again: every
// exec and SFTP transfer completes, none hangs. (ssh2 never answers an SFTP request whose connection went away; the
// shell must notice the close itself.) The cuts come from a proxy that cuts a connection after a set number of bytes,
// so they land at the same places however loaded the machine is; and how long the shell keeps reconnecting is a time
// budget, not a count of reconnects.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  ReconnectingPodShell,
  SshError,
  SshPodConnector,
  SshReconnectBudgetError,
  type SshTarget,
} from '../../src/activities/ssh/index.js';
import { startCuttingProxy, type CuttingProxy } from '../../sandbox/cutting-proxy.js';
import { startSandboxServers } from '../../sandbox/daemon.js';
import {
  connector,
  createSandboxPod,
  makeKey,
  type SandboxPod,
  type SandboxServers,
} from '../activities/sandbox-pod.js';

/** Bytes into a connection at which a big transfer's connection is cut: well past the SSH login, well before 1 MiB. */
const MID_TRANSFER_BYTES = 200_000;

describe('SSH to a pod whose connections keep dropping', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssh-drop-'));
  const apiKey = `test-${randomUUID()}`;
  let servers: SandboxServers;
  let keyPath: string;
  let pod: SandboxPod;
  /** 1 MiB of random bytes, on the worker's side. */
  const bigLocal = join(dir, 'big.bin');
  const big = randomBytes(1 << 20);

  beforeAll(async () => {
    servers = await startSandboxServers({ dataDir: join(dir, 'runpod'), apiKey });
    keyPath = makeKey(dir);
    pod = await createSandboxPod(servers, { apiKey, keyPath, name: `gpustudy--t--p--m--${randomUUID().slice(0, 8)}` });
    writeFileSync(bigLocal, big);
  });

  afterAll(async () => {
    await servers?.runpod.close();
    await servers?.hf.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The pod's sshd behind a proxy that cuts connection `i` after `cutAfterBytes(i)` bytes; closed with the test. */
  async function throughProxy(
    cutAfterBytes: (index: number) => number | null,
    onCut?: (index: number) => void,
  ): Promise<{ proxy: CuttingProxy; target: SshTarget }> {
    const proxy = await startCuttingProxy({ target: pod.endpoint.ssh, cutAfterBytes, ...(onCut ? { onCut } : {}) });
    onTestFinished(() => proxy.close());
    return { proxy, target: { ...pod.endpoint.ssh, host: proxy.host, port: proxy.port } };
  }

  it('reconnects and completes every exec, SFTP write and SFTP read', async () => {
    // Eight connections are cut, each after a different byte count, so the cuts fall at different points of a round
    // (about 40 kB: an exec, a write and a read of 18 kB); every later connection goes through.
    const cutAfterBytes = [24_000, 33_000, 47_000, 52_000, 68_000, 75_000, 91_000, 104_000];
    const { proxy, target } = await throughProxy((i) => cutAfterBytes[i] ?? null);
    const sh = await ReconnectingPodShell.open(connector(keyPath), target);
    try {
      const remote = `${pod.endpoint.workspaceDir}/drop-test.txt`;
      const local = join(dir, 'back.txt');
      // Rounds until every cut has happened, then two more on the clean connection.
      for (let i = 0, clean = 0; clean < 2; i++) {
        if (proxy.cuts === cutAfterBytes.length) clean += 1;
        const content = `round ${i} `.repeat(2_000);
        const r = await sh.exec(`echo ${i}`, { timeoutMs: 30_000 });
        expect(r.stdout.trim()).toBe(String(i));
        await sh.writeFile(remote, content);
        await sh.getFile(remote, local);
        expect(readFileSync(local, 'utf8')).toBe(content);
      }
    } finally {
      sh.close();
    }
    const cuts = proxy.cuts;
    expect(cuts).toBeGreaterThanOrEqual(5);
    expect(sh.reconnects).toBeGreaterThanOrEqual(1);
    // Every cut cost exactly one reconnect (all of them fall after the login), and nothing else dropped.
    expect(sh.reconnects).toBe(cuts);
  });

  it('keeps reconnecting one transfer past six cuts: the budget is time, not a count', async () => {
    // The same 1 MiB upload is cut on each of its first seven connections; the old fixed six reconnects gave up at
    // the seventh cut. The backoff alone takes about 24 s: a budget of 90 s (set on the connector, as the worker
    // does from SSH_RECONNECT_BUDGET_MS) leaves room for a loaded machine.
    const { proxy, target } = await throughProxy((i) => (i < 7 ? MID_TRANSFER_BYTES : null));
    const c = new SshPodConnector({ privateKeyPath: keyPath, connectTimeoutMs: 10_000, reconnectBudgetMs: 90_000 });
    const sh = await ReconnectingPodShell.open(c, target);
    const remote = `${pod.endpoint.workspaceDir}/big-7.bin`;
    const back = join(dir, 'big-7.back');
    try {
      await sh.putFile(bigLocal, remote);
      await sh.getFile(remote, back);
    } finally {
      sh.close();
    }
    expect(readFileSync(back).equals(big)).toBe(true);
    expect(proxy.cuts).toBe(7);
    expect(sh.reconnects).toBe(7);
    expect(proxy.connections).toBe(8);
  });

  it('gives up once the budget is spent, saying how many reconnects it made', async () => {
    const budgetMs = 3_000;
    const { proxy, target } = await throughProxy(() => MID_TRANSFER_BYTES); // every connection is cut
    const sh = await ReconnectingPodShell.open(connector(keyPath), target, { reconnectBudgetMs: budgetMs });
    const started = Date.now();
    const err = await sh.putFile(bigLocal, `${pod.endpoint.workspaceDir}/big-never.bin`).then(
      () => null,
      (e: unknown) => e,
    );
    const tookMs = Date.now() - started;
    sh.close();
    expect(err).toBeInstanceOf(SshReconnectBudgetError);
    const e = err as SshReconnectBudgetError;
    expect(e.kind).toBe('lost');
    expect(e.details.budgetMs).toBe(budgetMs);
    expect(e.details.elapsedMs).toBeGreaterThanOrEqual(budgetMs);
    expect(tookMs).toBeGreaterThanOrEqual(budgetMs);
    // Every connection after the shell's first was one of its reconnects, and each was cut in turn.
    expect(e.details.reconnects).toBeGreaterThanOrEqual(1);
    expect(e.details.reconnects).toBe(proxy.connections - 1);
    expect(proxy.cuts).toBe(proxy.connections);
    expect(sh.reconnects).toBe(proxy.cuts);
    expect(e.message).toContain(`gave up after ${e.details.reconnects} reconnect(s)`);
    expect(e.cause).toBeInstanceOf(SshError);
  });

  it('stops reconnecting at once when cancelled', async () => {
    const ac = new AbortController();
    const { proxy, target } = await throughProxy(() => MID_TRANSFER_BYTES);
    const sh = await ReconnectingPodShell.open(connector(keyPath), target, {
      signal: ac.signal,
      // The second drop is reported just before its backoff: cancelling there must end the operation.
      onReconnect: (count) => {
        if (count === 2) ac.abort();
      },
    });
    const err = await sh.putFile(bigLocal, `${pod.endpoint.workspaceDir}/big-cancelled.bin`).then(
      () => null,
      (e: unknown) => e,
    );
    sh.close();
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).kind).toBe('cancelled');
    expect(proxy.connections).toBe(2); // no connection after the cancel
  });

  it('refuses a reconnect budget that is not a whole number of ms, 0 or more', async () => {
    expect(
      () => new SshPodConnector({ privateKeyPath: keyPath, connectTimeoutMs: 10_000, reconnectBudgetMs: -1 }),
    ).toThrow(/Invalid reconnectBudgetMs: -1/);
    await expect(
      ReconnectingPodShell.open(connector(keyPath), pod.endpoint.ssh, { reconnectBudgetMs: 1.5 }),
    ).rejects.toThrow(/Invalid reconnectBudgetMs: 1.5/);
  });
});
