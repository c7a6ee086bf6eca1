import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { temporalTarget } from '../../src/shared/temporal-target.js';

describe('the Temporal connection (envconfig)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'temporal-target-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const toml = join(dir, 'temporal.toml');
  writeFileSync(
    toml,
    [
      '[profile.default]',
      'address = "temporal.lab.internal:7233"',
      'namespace = "lab"',
      '',
      '[profile.cloud]',
      'address = "my-ns.a1b2c.tmprl.cloud:7233"',
      'namespace = "my-ns.a1b2c"',
      'api_key = "key-from-file"',
      '',
    ].join('\n'),
  );
  // HOME points at an empty folder: no ~/.config/temporalio/temporal.toml of the machine leaks into a case.
  const home = { HOME: dir };

  it('defaults to the local dev server', () => {
    const t = temporalTarget(home);
    expect(t).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', tls: false, source: 'the environment' });
  });

  it('reads the default profile of TEMPORAL_CONFIG_FILE, and the variables win over it', () => {
    expect(temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: toml })).toMatchObject({
      address: 'temporal.lab.internal:7233',
      namespace: 'lab',
    });
    expect(temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_ADDRESS: '10.0.0.5:7233' })).toMatchObject({
      address: '10.0.0.5:7233',
      namespace: 'lab',
    });
  });

  it('connects to Temporal Cloud by profile: its API key turns TLS on', () => {
    const t = temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'cloud' });
    expect(t).toMatchObject({ address: 'my-ns.a1b2c.tmprl.cloud:7233', namespace: 'my-ns.a1b2c', tls: true });
    expect(t.connectionOptions.apiKey).toBe('key-from-file');
    expect(t.source).toBe(`profile cloud of ${toml}, then the environment`);
    // ...or by variables alone, as on a worker host with secrets in its environment
    const env = temporalTarget({ ...home, TEMPORAL_ADDRESS: 'x.tmprl.cloud:7233', TEMPORAL_API_KEY: 'k' });
    expect(env).toMatchObject({ tls: true, connectionOptions: { apiKey: 'k' } });
  });

  it('names what is wrong: a missing file, an unknown profile', () => {
    expect(() => temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: join(dir, 'nope.toml') })).toThrow(
      /TEMPORAL_CONFIG_FILE=.*nope\.toml does not exist/,
    );
    expect(() => temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'staging' })).toThrow(
      ConfigError,
    );
    expect(() => temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'staging' })).toThrow(
      /profile staging.*not found/,
    );
  });

  it('the sandbox takes no profile (a Cloud default must not reach the local dev server)', () => {
    const t = temporalTarget({ ...home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'cloud' }, { profiles: false });
    expect(t).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', tls: false });
  });

  it('the config carries exactly the variables the connection is made from', () => {
    const c = loadConfig({ SANDBOX: 'true', HOME: dir, TEMPORAL_PROFILE: 'cloud', RUNPOD_API_KEY: 'secret' });
    expect(c.TEMPORAL_ENV).toEqual({ HOME: dir, TEMPORAL_PROFILE: 'cloud' });
  });
});
