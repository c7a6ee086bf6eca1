import { execFileSync, spawn } from 'node:child_process';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { toApplicationFailure } from '../../src/activities/failures.js';
import { envPrefix, findProcesses, killPids, q, SshError } from '../../src/activities/ssh/index.js';
import { ModelDoesNotFitError, sameRelease } from '../../src/activities/vllm/index.js';

const sh = (command: string) => execFileSync('sh', ['-c', command], { encoding: 'utf8' });

describe('shell quoting for pod commands', () => {
  it('passes any value through sh unchanged', () => {
    for (const value of [`it's`, '$(rm -rf /)', 'a "b" `c`', 'new\nline', '']) {
      expect(sh(`printf '%s' ${q(value)}`)).toBe(value);
    }
  });

  it('builds an environment prefix and drops unset values', () => {
    expect(sh(`${envPrefix({ A: "x'y", B: undefined })}sh -c 'printf "%s|%s" "$A" "\${B-unset}"'`)).toBe("x'y|unset");
  });
});

describe('vLLM versions', () => {
  it('treats local builds as the same release and anything else as different', () => {
    expect(sameRelease('0.11.0+cu128', '0.11.0')).toBe(true);
    expect(sameRelease('0.11.0+sim', '0.11.0')).toBe(true);
    expect(sameRelease('0.11.1', '0.11.0')).toBe(false);
    expect(sameRelease('', '0.11.0')).toBe(false);
  });
});

describe('error conversion at the activity edge', () => {
  it('keeps the error name as the failure type and marks non-retryable ones', () => {
    const fit = toApplicationFailure(new ModelDoesNotFitError('too big')) as ApplicationFailure;
    expect(fit).toBeInstanceOf(ApplicationFailure);
    expect(fit.type).toBe('ModelDoesNotFitError');
    expect(fit.nonRetryable).toBe(true);
    const ssh = toApplicationFailure(new SshError('reset', 'root@h:22')) as ApplicationFailure;
    expect(ssh.type).toBe('SshError');
    expect(ssh.nonRetryable).toBe(false);
  });

  it('never rewraps an ApplicationFailure', () => {
    const original = ApplicationFailure.nonRetryable('x', 'Custom');
    expect(toApplicationFailure(original)).toBe(original);
  });
});

describe('stale-process helpers (run in a local sh)', () => {
  it('findProcesses finds a process by a command-line fragment, never the search itself; killPids ends it', async () => {
    const marker = `/tmp/no-such-dir-${process.pid}/models/`;
    // `sh -c 'sleep 30' <name> serve <marker>`: a process whose command line carries the fragment.
    const child = spawn('sh', ['-c', 'sleep 30', 'vllm', 'serve', marker], { stdio: 'ignore', detached: true });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const found = sh(findProcesses(` serve ${marker}`))
        .trim()
        .split('\n')
        .filter(Boolean)
        .map(Number);
      expect(found).toEqual([child.pid]);
      sh(killPids(found));
      await new Promise((r) => setTimeout(r, 200));
      expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
