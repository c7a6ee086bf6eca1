import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StudyListing } from '../../src/cli/list.js';
import { workflowIds } from '../../src/shared/constants.js';

const run = promisify(execFile);

/**
 * The worker polls `TASK_QUEUE`; the CLI must start workflows on the same queue, or a user who sets it gets
 * workflows that no worker polls. No worker runs here: the started workflow waits on its queue, which we read back.
 */
describe('the CLI and TASK_QUEUE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-queue-'));
  const studyName = `cliq-${randomUUID().slice(0, 8)}`;
  const taskQueue = `custom-${randomUUID()}`;
  let connection: Connection;
  let client: Client;

  beforeAll(async () => {
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
  });

  afterAll(async () => {
    await client.workflow
      .getHandle(workflowIds.study(studyName))
      .terminate('test done')
      .catch(() => undefined);
    await connection?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts the study workflow on the task queue from the environment', async () => {
    const studyFile = join(dir, 'study.yaml');
    const rq1 = readFileSync('studies/rq1.yaml', 'utf8');
    expect(rq1).toMatch(/^study: rq1$/m);
    // The real VulTrial file is not in a clone (it is git-ignored): the synthetic one stands in.
    expect(rq1).toMatch(/^datasetPath: data\/vultrial-386\.jsonl$/m);
    writeFileSync(
      studyFile,
      rq1
        .replace(/^study: rq1$/m, `study: ${studyName}`)
        .replace(/^datasetPath: .*$/m, 'datasetPath: data/synthetic-vultrial.jsonl'),
    );

    const out = await run(
      'npx',
      ['tsx', 'src/cli/main.ts', 'start', 'phase2a', '--study', studyFile, '--offline', '--yes', '--detach'],
      {
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: inject('temporalAddress'),
          TASK_QUEUE: taskQueue,
          RUNPOD_API_KEY: 'test-key',
        },
      },
    );
    expect(out.stdout).toContain(`started ${workflowIds.study(studyName)} at phase2a`);

    const described = await client.workflow.getHandle(workflowIds.study(studyName)).describe();
    expect(described.taskQueue).toBe(taskQueue);
  });

  it('lists the running study by its Study attribute, saying when no worker answers its progress query', async () => {
    const env = { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress') };
    // Visibility is eventually consistent: the study started above appears within moments.
    let rows: StudyListing[] = [];
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      const out = await run('npx', ['tsx', 'src/cli/main.ts', 'list', '--json'], { env });
      rows = (JSON.parse(out.stdout) as StudyListing[]).filter((r) => r.study === studyName);
      if (rows.length) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ workflowId: workflowIds.study(studyName), status: 'RUNNING', progress: null });
    const text = await run('npx', ['tsx', 'src/cli/main.ts', 'list'], { env });
    expect(text.stdout).toMatch(new RegExp(`^${studyName} +running \\(no worker answered`, 'm'));
    const bad = await run('npx', ['tsx', 'src/cli/main.ts', 'list', '--limit', '0'], { env }).catch((e: unknown) => e);
    expect(bad).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--limit must be a whole number') as unknown,
    });
  });
});
