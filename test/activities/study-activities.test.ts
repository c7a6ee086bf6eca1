import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { withFailureConversion } from '../../src/activities/failures.js';
import type { PodConnector } from '../../src/activities/ssh/index.js';
import {
  createStudyActivities,
  HarnessCheckClient,
  type CheckStudyInputsInput,
  type CheckStudyInputsOutput,
} from '../../src/activities/study/index.js';
import { createWorkspaceActivities, type PreparePodInput } from '../../src/activities/workspace/index.js';
import { MIN_MEASURE_POWER_SECS } from '../../src/shared/constants.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { Study } from '../../src/study/schema.js';
import { HARNESS_DIR } from '../../src/workers/worker.js';

/**
 * checkStudyInputs: before anything is reserved, the study's files stay inside the project and pass the harness's own
 * checks, run by the real harness code in the project's Python (as the worker runs it).
 */
const REPO = process.cwd();
const base = loadStudyFile('studies/rq1.sandbox.yaml');

/** A project root of its own with the sandbox study's files, and a secret outside it. */
function project(): { root: string; outside: string } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'check-root-')));
  const outside = realpathSync(mkdtempSync(join(tmpdir(), 'check-outside-')));
  for (const dir of ['data', 'prompts']) mkdirSync(join(root, dir));
  for (const f of [base.datasetPath, ...base.prompts.flatMap((p) => [p.templatePath, p.fewShotExamplesPath ?? []])]) {
    if (typeof f === 'string') copyFileSync(resolve(REPO, f), join(root, f));
  }
  writeFileSync(join(outside, 'id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\n');
  return { root, outside };
}

/** Runs checkStudyInputs for a project root as the worker would: real harness check, failures converted once. */
function check(root: string, study: Study): Promise<CheckStudyInputsOutput> {
  const harnessCheck = new HarnessCheckClient({ python: resolve(REPO, '.venv/bin/python'), harnessDir: HARNESS_DIR });
  const acts = withFailureConversion(createStudyActivities({ projectRoot: root, harnessCheck }));
  const env = new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') });
  return env.run((input: CheckStudyInputsInput) => acts.checkStudyInputs(input), { study });
}

/** Runs the activity as the worker would and returns its failure (or throws when it succeeds). */
async function refused(root: string, study: Study): Promise<ApplicationFailure> {
  const err = await check(root, study).catch((e: unknown) => e);
  if (!(err instanceof ApplicationFailure)) throw new Error(`expected a failure, got ${String(err)}`);
  return err;
}

describe('checkStudyInputs', () => {
  it("passes the sandbox study's files and reports the dataset", async () => {
    const { root } = project();
    const out = await check(root, base);
    expect(out.files).toEqual([
      'data/synthetic-vultrial.jsonl',
      'prompts/zero-shot.txt',
      'prompts/few-shot.txt',
      'prompts/few-shot-examples.jsonl',
    ]);
    expect(out.samples).toBeGreaterThan(0);
  });

  it('refuses a dataset outside the project, directly or through a link, without running the harness', async () => {
    const { root, outside } = project();
    const key = join(outside, 'id_ed25519');
    symlinkSync(key, join(root, 'data', 'key.jsonl'));
    for (const datasetPath of [key, '../../.ssh/id_ed25519', 'data/key.jsonl']) {
      const f = await refused(root, { ...base, datasetPath });
      expect(f.type).toBe('StudyInvalidError');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toMatch(/datasetPath: .*(outside the project)/);
    }
  });

  it('refuses /dev/zero, a FIFO and a directory, unread', async () => {
    const { root } = project();
    symlinkSync('/dev/zero', join(root, 'data', 'zero.jsonl'));
    execFileSync('mkfifo', [join(root, 'data', 'fifo.jsonl')]);
    expect((await refused(root, { ...base, datasetPath: 'data/zero.jsonl' })).message).toMatch(
      /datasetPath: data\/zero\.jsonl is a link to a file outside the project/,
    );
    expect((await refused(root, { ...base, datasetPath: 'data/fifo.jsonl' })).message).toMatch(
      /datasetPath: data\/fifo\.jsonl is not a regular file/,
    );
    expect((await refused(root, { ...base, datasetPath: 'data' })).message).toMatch(
      /datasetPath: data is not a regular file/,
    );
  });

  it('refuses a template that references a label field (the harness rule, before any pod)', async () => {
    const { root } = project();
    writeFileSync(join(root, 'prompts', 'zero-shot.txt'), 'CVE: {cve}\n{func}\n');
    const f = await refused(root, base);
    expect(f.type).toBe('StudyInvalidError');
    expect(f.message).toMatch(/prompts\.0\.templatePath: label leak: template .* \{cve\}/);
  });

  it('refuses few-shot examples that overlap the dataset', async () => {
    const { root } = project();
    const examples = join(root, 'prompts', 'few-shot-examples.jsonl');
    const [first] = execFileSync('head', ['-n', '1', join(root, base.datasetPath)], { encoding: 'utf8' }).split('\n');
    writeFileSync(examples, `${first}\n`);
    expect((await refused(root, base)).message).toMatch(/prompts\.1\.fewShotExamplesPath: few-shot overlap/);
  });

  it('refuses measurePowerSecs below the harness minimum, the same number on both sides', async () => {
    const { root } = project();
    const at = (measurePowerSecs: number) => ({ ...base, codecarbon: { ...base.codecarbon, measurePowerSecs } });
    expect((await refused(root, at(MIN_MEASURE_POWER_SECS - 0.01))).message).toMatch(
      /codecarbon: .*measurePowerSecs must be >= 0\.1/,
    );
    await expect(check(root, at(MIN_MEASURE_POWER_SECS))).resolves.toMatchObject({
      duplicates: expect.any(Number) as number,
    });
  });
});

describe('preparePod', () => {
  it('uploads nothing the phase check would refuse: a dataset linked out of the project fails before any SSH', async () => {
    const { root, outside } = project();
    symlinkSync(join(outside, 'id_ed25519'), join(root, 'data', 'linked.jsonl'));
    let connects = 0;
    const connector: PodConnector = {
      connect: () => {
        connects++;
        return Promise.reject(new Error('no pod in this test'));
      },
    };
    const acts = withFailureConversion(
      createWorkspaceActivities({ connector, projectRoot: root, harnessDir: HARNESS_DIR }),
    );
    const env = new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') });
    const input: PreparePodInput = {
      endpoint: { ssh: { host: '127.0.0.1', port: 1, username: 'root' }, workspaceDir: '/workspace' },
      datasetPath: 'data/linked.jsonl',
      prompts: base.prompts,
      vllmVersion: base.vllm.version,
    };
    const err = await env.run((i: PreparePodInput) => acts.preparePod(i), input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('StudyInvalidError');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(
      /datasetPath: data\/linked\.jsonl is a link to a file outside the project/,
    );
    expect(connects).toBe(0);
  });
});
