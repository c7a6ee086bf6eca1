import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, EnvSchema, loadConfig, loadDotEnv } from '../../src/config.js';

describe('loadConfig', () => {
  it('refuses a real run without RUNPOD_API_KEY and says so', () => {
    expect(() => loadConfig({ HOME: '/home/x' })).toThrow(ConfigError);
    expect(() => loadConfig({ HOME: '/home/x' })).toThrow(/RUNPOD_API_KEY is not set/);
  });

  it('lets commands that never call RunPod run without the key', () => {
    expect(loadConfig({ HOME: '/h' }, '/p', { requireRunPodKey: false }).RUNPOD_API_KEY).toBeUndefined();
  });

  it('fills defaults from HOME and the working directory', () => {
    const c = loadConfig({ HOME: '/home/x', RUNPOD_API_KEY: 'k' }, '/proj');
    expect(c.SSH_PRIVATE_KEY_PATH).toBe('/home/x/.ssh/id_ed25519');
    expect(c.PROJECT_ROOT).toBe('/proj');
    expect(c.RUNPOD_BASE_URL).toBe('https://api.runpod.io/v2');
    expect(c.SANDBOX).toBe(false);
  });

  it('parses booleans strictly and names bad values', () => {
    expect(loadConfig({ SANDBOX: 'true' }).SANDBOX).toBe(true);
    expect(() => loadConfig({ SANDBOX: 'yes please' })).toThrow(/SANDBOX/);
    expect(() => loadConfig({ SANDBOX: 'true', POD_POLL_INTERVAL_MS: '-5' })).toThrow(/POD_POLL_INTERVAL_MS/);
  });

  it('bounds what a pod may send home, with defaults a real run fits in and overrides from the environment', () => {
    const c = loadConfig({ SANDBOX: 'true' });
    expect(c.TRANSFER_MAX_FILE_BYTES).toBe(2 * 1024 ** 3);
    expect(c.TRANSFER_MAX_FILES_PER_RUN).toBe(64);
    expect(c.TRANSFER_MAX_SESSION_BYTES).toBe(20 * 1024 ** 3);
    expect(c.TRANSFER_MAX_JSON_BYTES).toBe(8 * 1024 ** 2);
    expect(c.TRANSFER_MAX_LOG_BYTES).toBe(64 * 1024 ** 2);
    expect(loadConfig({ SANDBOX: 'true', TRANSFER_MAX_FILES_PER_RUN: '200' }).TRANSFER_MAX_FILES_PER_RUN).toBe(200);
    expect(() => loadConfig({ SANDBOX: 'true', TRANSFER_MAX_FILE_BYTES: '0' })).toThrow(/TRANSFER_MAX_FILE_BYTES/);
  });

  it('takes a shared results store as s3://bucket[/prefix], and refuses files too large for one upload to it', () => {
    const store = {
      SANDBOX: 'true',
      RESULTS_STORE_URL: 's3://gpu-results/rq1',
      RESULTS_STORE_ENDPOINT: 'http://s3:9000',
    };
    expect(loadConfig(store)).toMatchObject({
      RESULTS_STORE_URL: 's3://gpu-results/rq1',
      RESULTS_STORE_REGION: 'us-east-1',
    });
    expect(loadConfig({ SANDBOX: 'true' }).RESULTS_STORE_URL).toBeUndefined();
    expect(() => loadConfig({ ...store, RESULTS_STORE_URL: 'https://gpu-results' })).toThrow(/RESULTS_STORE_URL/);
    expect(() => loadConfig({ ...store, TRANSFER_MAX_FILE_BYTES: String(6 * 1024 ** 3) })).toThrow(/5 GiB/);
    // Without a store, a large limit is the worker's own business.
    expect(
      loadConfig({ SANDBOX: 'true', TRANSFER_MAX_FILE_BYTES: String(6 * 1024 ** 3) }).TRANSFER_MAX_FILE_BYTES,
    ).toBe(6 * 1024 ** 3);
  });

  it('documents every variable it reads in .env.example, and that file copied to .env is a valid config', () => {
    const example = readFileSync('.env.example', 'utf8');
    const missing = Object.keys(EnvSchema.shape).filter((k) => !new RegExp(`^(# )?${k}=`, 'm').test(example));
    expect(missing).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'dotenv-'));
    try {
      writeFileSync(join(dir, '.env'), example);
      const vars = Object.fromEntries(
        example
          .split('\n')
          .filter((l) => /^[A-Z_]+=/.test(l))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      expect(() => loadConfig({ ...vars, RUNPOD_API_KEY: 'k' }, dir)).not.toThrow();
      // loadDotEnv reads it into the environment without overriding what is set
      const before = { ...process.env };
      process.env.RESULTS_DIR = 'mine';
      delete process.env.TRANSFER_MAX_LOG_BYTES;
      try {
        expect(loadDotEnv(dir)).toBe(join(dir, '.env'));
        expect(process.env.RESULTS_DIR).toBe('mine');
        expect(process.env.TRANSFER_MAX_LOG_BYTES).toBe('67108864');
      } finally {
        for (const k of Object.keys(process.env)) if (!(k in before)) delete process.env[k];
        Object.assign(process.env, before);
      }
      expect(loadDotEnv(join(dir, 'none'))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
