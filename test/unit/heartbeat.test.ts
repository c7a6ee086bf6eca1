import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keepHeartbeating } from '../../src/activities/heartbeat.js';

describe('keepHeartbeating', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('heartbeats the current details while the work runs, and stops when it settles', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    let step = 'upload';
    let finish: (v: string) => void = () => undefined;
    const work = new Promise<string>((resolve) => (finish = resolve));

    const running = env.run(() =>
      keepHeartbeating(
        () => ({ step }),
        () => work,
        1_000,
      ),
    );
    await vi.advanceTimersByTimeAsync(2_500);
    step = 'pip install';
    await vi.advanceTimersByTimeAsync(1_000);
    expect(beats).toEqual([{ step: 'upload' }, { step: 'upload' }, { step: 'pip install' }]);

    finish('done');
    await expect(running).resolves.toBe('done');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(beats).toHaveLength(3);
  });

  it('stops the ticker when the work fails, and passes the failure on', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    let fail: (e: Error) => void = () => undefined;
    const work = new Promise<never>((_, reject) => (fail = reject));
    const running = env.run(() =>
      keepHeartbeating(
        () => 'x',
        () => work,
        1_000,
      ),
    );
    await vi.advanceTimersByTimeAsync(1_500);
    fail(new Error('sftp cut'));
    await expect(running).rejects.toThrow('sftp cut');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(beats).toEqual(['x']);
  });
});
