import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';

const Service = z.object({
  image: z.string(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  depends_on: z.union([z.array(z.string()), z.record(z.string(), z.object({ condition: z.string() }))]).optional(),
  ports: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
});
const Compose = z.object({
  services: z.record(z.string(), Service),
  volumes: z.record(z.string(), z.unknown()).optional(),
});

const dockerComposeWorks = (() => {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('docker-compose.temporal.yml', () => {
  const compose = Compose.parse(parse(readFileSync('docker-compose.temporal.yml', 'utf8')));

  it('wires server -> PostgreSQL and UI -> server', () => {
    const { postgresql, temporal, 'temporal-ui': ui } = compose.services;
    expect(postgresql?.image).toMatch(/^postgres:/);
    expect(temporal?.environment?.DB).toBe('postgres12');
    expect(temporal?.environment?.POSTGRES_SEEDS).toBe('postgresql');
    expect(temporal?.environment?.POSTGRES_USER).toBe(postgresql?.environment?.POSTGRES_USER);
    expect(temporal?.environment?.POSTGRES_PWD).toBe(postgresql?.environment?.POSTGRES_PASSWORD);
    expect(Object.keys(temporal?.depends_on ?? {})).toContain('postgresql');
    expect(temporal?.ports).toContain('7233:7233');
    expect(ui?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(ui?.depends_on).toContain('temporal');
  });

  it('names only volumes it declares', () => {
    const used = Object.values(compose.services).flatMap((s) => (s.volumes ?? []).map((v) => v.split(':')[0]));
    expect(used).toContain('temporal-postgres');
    for (const v of used) expect(Object.keys(compose.volumes ?? {})).toContain(v);
  });

  it.runIf(dockerComposeWorks)('passes `docker compose config`', () => {
    execFileSync('docker', ['compose', '-f', 'docker-compose.temporal.yml', 'config', '--quiet']);
  });
});
