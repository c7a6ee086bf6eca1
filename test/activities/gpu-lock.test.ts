import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Client, Connection } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import {
  createGpuLockActivities,
  gpuLockPath,
  GpuNotFoundError,
  type AcquireGpuLockInput,
  type GpuLockOwner,
  type ReleaseGpuLockInput,
} from '../../src/activities/workspace/index.js';
import type { PodEndpoint } from '../../src/activities/ssh/index.js';
import { temporalWorkflowRunState } from '../../src/workers/workflow-run-state.js';
import { sandboxPodPath } from '../../sandbox/daemon.js';
import { startTeamServer, type TeamServer } from '../../sandbox/team-server.js';
import { connector, makeKey } from './sandbox-pod.js';

/**
 * The GPU lock of the team's server, activity by activity, against the sandbox's team server stand-in (a real
 * loopback sshd with four simulated GPUs) and the real Temporal dev server for the holders' run states.
 */
describe('GPU lock on the team server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpu-lock-'));
  let server: TeamServer;
  let client: Client;
  let connection: Connection;
  let endpoint: PodEndpoint;
  let acts: ReturnType<typeof createGpuLockActivities>;
  const noWorker = `gpu-lock-nobody-${randomUUID()}`;
  const runs: { terminate: () => Promise<void> }[] = [];

  beforeAll(async () => {
    const key = makeKey(dir);
    server = await startTeamServer({
      dir: join(dir, 'team-server'),
      pathPrefix: sandboxPodPath(process.cwd()),
      authorizedKeys: readFileSync(`${key}.pub`, 'utf8'),
    });
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
    const t = server.info;
    endpoint = {
      ssh: { host: t.host, port: t.port, username: t.username, hostKeySha256: t.hostKeySha256 },
      workspaceDir: t.workspaceDir,
    };
    acts = createGpuLockActivities({
      connector: connector(key),
      workflowRunState: temporalWorkflowRunState(client),
      lockOwnerIdentity: 'tester@test-host',
    });
  });

  afterAll(async () => {
    // The runs that stood in for holders end with the file.
    await Promise.all(runs.map((r) => r.terminate().catch(() => undefined)));
    await server?.close();
    await connection?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A workflow run that exists on the dev server and stays RUNNING (no worker polls its queue) until terminated. */
  async function liveRun(name: string): Promise<GpuLockOwner & { terminate: () => Promise<void> }> {
    const workflowId = `gpu-lock-${name}-${randomUUID()}`;
    const handle = await client.workflow.start('podSessionWorkflow', { taskQueue: noWorker, workflowId, args: [] });
    const terminate = async () => {
      await handle.terminate('test: the holder is gone');
    };
    runs.push({ terminate });
    return {
      study: `study-${name}`,
      phase: 'phase1',
      model: 'Qwen/Qwen3-4B-Instruct-2507',
      workflowId,
      runId: handle.firstExecutionRunId,
      terminate,
    };
  }

  let lockDirs = 0;
  /** Each test its own lock root, as if each were another server. */
  const freshLock = () => ({ dir: join(dir, `locks-${++lockDirs}`), staleAfterMs: 60_000 });

  /** One activity call in a mock activity context (typed: the mock's own signature loses the result type). */
  const run = <I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O> =>
    new MockActivityEnvironment().run(fn, input);
  const acquire = (owner: GpuLockOwner, lock: AcquireGpuLockInput['lock'], gpuIndex = 0) =>
    run((i: AcquireGpuLockInput) => acts.acquireGpuLock(i), {
      endpoint,
      gpuIndex,
      lock,
      owner: {
        study: owner.study,
        phase: owner.phase,
        model: owner.model,
        workflowId: owner.workflowId,
        runId: owner.runId,
      },
    });
  const release = (owner: GpuLockOwner, lock: { dir: string }, gpuIndex = 0) =>
    run((i: ReleaseGpuLockInput) => acts.releaseGpuLock(i), {
      endpoint,
      gpuIndex,
      lock,
      owner: { workflowId: owner.workflowId, runId: owner.runId },
    });
  /** Ages the session heartbeat the lock points at, as a worker that stopped touching it would leave it. */
  const ageHeartbeat = (ms: number) => {
    const then = (Date.now() - ms) / 1000;
    utimesSync(join(endpoint.workspaceDir, 'heartbeat'), then, then);
  };

  it('takes a free GPU with an owner record and the session heartbeat, and names the holder to another run', async () => {
    const lock = freshLock();
    const [a, b] = [await liveRun('a'), await liveRun('b')];
    const got = await acquire(a, lock);
    expect(got).toMatchObject({ acquired: true, how: 'created', gpu: { index: 0, name: 'NVIDIA RTX A5000' } });
    const path = gpuLockPath(lock.dir, 0);
    const record = JSON.parse(readFileSync(join(path, 'owner.json'), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({
      schemaVersion: 1,
      study: 'study-a',
      phase: 'phase1',
      model: 'Qwen/Qwen3-4B-Instruct-2507',
      workflowId: a.workflowId,
      runId: a.runId,
      gpuIndex: 0,
      startedBy: 'tester@test-host',
    });
    expect(Date.parse(String(record.acquiredAt))).toBeGreaterThan(Date.now() - 60_000);
    // Liveness is the session's workspace heartbeat, which every pod activity touches on each poll.
    expect(readlinkSync(join(path, 'heartbeat'))).toBe(join(endpoint.workspaceDir, 'heartbeat'));
    expect(existsSync(join(endpoint.workspaceDir, 'heartbeat'))).toBe(true);

    const other = await acquire(b, lock);
    expect(other.acquired).toBe(false);
    if (other.acquired) return;
    expect(other.holder.record).toMatchObject({ study: 'study-a', workflowId: a.workflowId, runId: a.runId });
    expect(other.holder.runState).toBe('running');
    expect(other.holder.heartbeatAgeMs).toBeLessThan(60_000);
    // Another GPU of the same server is free.
    expect(await acquire(b, lock, 2)).toMatchObject({ acquired: true, how: 'created', gpu: { index: 2 } });
  });

  it('is idempotent for the holder itself, and only the holder releases', async () => {
    const lock = freshLock();
    const [a, b] = [await liveRun('a'), await liveRun('b')];
    expect(await acquire(a, lock)).toMatchObject({ acquired: true, how: 'created' });
    expect(await acquire(a, lock)).toMatchObject({ acquired: true, how: 'already-held' });
    const byOther = await release(b, lock);
    expect(byOther.outcome).toBe('held-by-other');
    expect(byOther.holder?.record?.runId).toBe(a.runId);
    expect(existsSync(gpuLockPath(lock.dir, 0))).toBe(true);
    expect(await release(a, lock)).toEqual({ outcome: 'released', holder: null });
    expect(existsSync(gpuLockPath(lock.dir, 0))).toBe(false);
    expect(await release(a, lock)).toEqual({ outcome: 'not-held', holder: null });
    expect(await acquire(b, lock)).toMatchObject({ acquired: true, how: 'created' });
  });

  it('takes over the lock of a holder whose workflow run is closed, naming the old owner', async () => {
    const lock = freshLock();
    const [a, b] = [await liveRun('a'), await liveRun('b')];
    await acquire(a, lock);
    await a.terminate();
    const got = await acquire(b, lock);
    expect(got).toMatchObject({ acquired: true, how: 'taken-over' });
    if (!got.acquired) return;
    expect(got.takenOver?.reason).toMatch(/workflow run .* is closed/);
    expect(got.takenOver?.holder.record).toMatchObject({ workflowId: a.workflowId, runId: a.runId });
    expect(got.takenOver?.holder.runState).toBe('closed');
    const record = JSON.parse(readFileSync(join(gpuLockPath(lock.dir, 0), 'owner.json'), 'utf8')) as { runId: string };
    expect(record.runId).toBe(b.runId);
  });

  it('takes over the lock of a holder whose heartbeat went stale, and not while the session touches it', async () => {
    const lock = freshLock();
    const [a, b] = [await liveRun('a'), await liveRun('b')];
    await acquire(a, lock);
    ageHeartbeat(5 * 60_000);
    // The holder's next poll touches <ws>/heartbeat, as every pod activity does: alive again.
    const now = Date.now() / 1000;
    utimesSync(join(endpoint.workspaceDir, 'heartbeat'), now, now);
    expect((await acquire(b, lock)).acquired).toBe(false);
    ageHeartbeat(5 * 60_000);
    const got = await acquire(b, lock);
    expect(got).toMatchObject({ acquired: true, how: 'taken-over' });
    if (!got.acquired) return;
    // The holder's run is still RUNNING on the server: its worker stopped, the heartbeat says so.
    expect(got.takenOver?.reason).toMatch(/heartbeat is \d+ s old/);
    expect(got.takenOver?.holder.record?.runId).toBe(a.runId);
  });

  it('lets exactly one of several takers at once win a stale lock; the others see the winner as holder', async () => {
    for (let round = 0; round < 3; round++) {
      const lock = freshLock();
      const gone = await liveRun('gone');
      await acquire(gone, lock);
      await gone.terminate();
      const takers = await Promise.all([0, 1, 2, 3].map((i) => liveRun(`taker${i}`)));
      const results = await Promise.all(takers.map((t) => acquire(t, lock)));
      const winners = results.flatMap((r, i) => (r.acquired ? [takers[i]] : []));
      expect(winners).toHaveLength(1);
      const winner = winners[0];
      for (const r of results) {
        if (r.acquired) expect(r.how).toBe('taken-over');
        else expect(r.holder.record?.runId).toBe(winner?.runId);
      }
      const record = JSON.parse(readFileSync(join(gpuLockPath(lock.dir, 0), 'owner.json'), 'utf8')) as {
        runId: string;
      };
      expect(record.runId).toBe(winner?.runId);
    }
  });

  it('reads an owner record it cannot use as an unreadable holder, taken over only once stale', async () => {
    const lock = freshLock();
    const a = await liveRun('a');
    const path = gpuLockPath(lock.dir, 0);
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'owner.json'), `{"study":"${'x'.repeat(10_000)}"}`);
    const held = await acquire(a, lock);
    expect(held.acquired).toBe(false);
    if (held.acquired) return;
    expect(held.holder.record).toBeNull();
    expect(held.holder.problem).toMatch(/over 4096 bytes/);
    const old = (Date.now() - 5 * 60_000) / 1000;
    utimesSync(path, old, old);
    expect(await acquire(a, lock)).toMatchObject({ acquired: true, how: 'taken-over' });
  });

  it('fails for good, naming the GPUs the host has, when the chosen GPU does not exist', async () => {
    const a = await liveRun('a');
    const lock = freshLock();
    const err = await acquire(a, lock, 7).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuNotFoundError);
    expect((err as Error).message).toMatch(
      /GPU 7 does not exist on 127\.0\.0\.1:\d+: it has 4 GPU\(s\): 0 NVIDIA RTX A5000 \(24564 MiB\), 1 .*, 3 NVIDIA RTX A5000/,
    );
    // As the worker registers it: a non-retryable ApplicationFailure of that type.
    const wrapped = withFailureConversion(acts);
    const failure = await run((i: AcquireGpuLockInput) => wrapped.acquireGpuLock(i), {
      endpoint,
      gpuIndex: 7,
      lock,
      owner: a,
    }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('GpuNotFoundError');
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    expect(existsSync(gpuLockPath(lock.dir, 7))).toBe(false);
  });
});
