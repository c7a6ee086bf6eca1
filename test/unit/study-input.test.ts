import { mkdirSync, mkdtempSync, realpathSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import {
  MAX_STUDY_FILE_BYTES,
  MIN_MEASURE_POWER_SECS,
  WATCHDOG_TOUCH_INTERVAL_MS,
} from '../../src/shared/constants.js';
import { resolveStudyFiles } from '../../src/study/files.js';
import { checkStudyFiles, loadStudyFile } from '../../src/study/load.js';
import { StudySchema, type Study } from '../../src/study/schema.js';
import { validateWorkflowInput } from '../../src/study/validate.js';

/**
 * The study file and a workflow's study input are untrusted (issue 14): every refusal here was accepted before.
 */
const base = loadStudyFile('studies/rq1.sandbox.yaml');

/** The problems of a copy of the sandbox study changed by `mutate`, one `path: message` line each. */
function problems(mutate: (s: Study) => void): string[] {
  const doc = structuredClone(base);
  mutate(doc);
  const r = StudySchema.safeParse(doc);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`the sandbox study has no ${what}`);
  return v;
};
const phase = (s: Study, id: string) =>
  need(
    s.phases.find((p) => p.id === id),
    id,
  );
const model = (s: Study, id: string, i: number) => need(phase(s, id).models[i], `${id} model ${i}`);
const prompt = (s: Study, i: number) => need(s.prompts[i], `prompt ${i}`);
function runpod(s: Study) {
  const t = phase(s, 'phase2a').target;
  if (t.kind !== 'runpod') throw new Error('phase2a runs on RunPod');
  return t;
}
function sshHost(s: Study) {
  const t = phase(s, 'phase1').target;
  if (t.kind !== 'ssh-host') throw new Error('phase1 runs on an ssh-host');
  return t;
}

describe('study refusals', () => {
  it('the shipped studies still load', () => {
    for (const f of ['rq1', 'rq1.sandbox', 'rq1-fewshot-improves.sandbox', 'rq1-fewshot-degrades.sandbox']) {
      expect(() => loadStudyFile(`studies/${f}.yaml`)).not.toThrow();
    }
  });

  it('refuses ports above 65535', () => {
    expect(problems((s) => (s.vllm.port = 70_000))).toEqual([expect.stringMatching(/^vllm\.port: /)]);
    expect(problems((s) => (sshHost(s).port = 65_536))).toEqual([expect.stringMatching(/^phases\.0\.target\.port: /)]);
    expect(problems((s) => (s.vllm.port = 65_535))).toEqual([]);
  });

  it('refuses a repoId with . or .. parts', () => {
    for (const repoId of ['../..', 'Qwen/..', './x']) {
      expect(problems((s) => (model(s, 'phase2b', 0).repoId = repoId))).toEqual([
        'phases.2.models.0.repoId: owner and name must not be . or ..',
      ]);
    }
  });

  it('refuses duplicate models and models whose folder names collide', () => {
    expect(problems((s) => phase(s, 'phase2a').models.push(structuredClone(model(s, 'phase2a', 0))))).toEqual([
      'phases.1.models.2.repoId: duplicate model Qwen/Qwen3-30B-A3B-Instruct-2507',
    ]);
    const collide = problems((s) =>
      phase(s, 'phase2a').models.push({ ...model(s, 'phase2a', 0), repoId: 'other/qwen3-30b-a3b-instruct-2507' }),
    );
    expect(collide).toEqual([expect.stringMatching(/^phases\.1\.models\.2\.repoId: .* share the folder name/)]);
  });

  it('refuses a watchdog staleAfterMs not longer than the longest gap between touches', () => {
    const stale = (ms: number) => problems((s) => (runpod(s).watchdog = { ...runpod(s).watchdog, staleAfterMs: ms }));
    expect(stale(WATCHDOG_TOUCH_INTERVAL_MS)).toEqual([
      expect.stringMatching(/^phases\.1\.target\.watchdog\.staleAfterMs: must be longer than 10000 ms/),
    ]);
    expect(stale(WATCHDOG_TOUCH_INTERVAL_MS + 2_000)).toEqual([]);
  });

  it('refuses workspace paths with characters the probe strips, newlines or .. parts', () => {
    for (const dir of ['/work space', '/ws\n/x', '/ws;rm -rf ~', '/ws/../etc', 'relative']) {
      expect(problems((s) => (sshHost(s).workspaceDir = dir))).toEqual([
        expect.stringMatching(/^phases\.0\.target\.workspaceDir: /),
      ]);
      expect(problems((s) => (runpod(s).volumeMountPath = dir))).toEqual([
        expect.stringMatching(/^phases\.1\.target\.volumeMountPath: /),
      ]);
    }
    expect(problems((s) => (runpod(s).volumeMountPath = '/runpod-volume/gpu_study.1'))).toEqual([]);
  });

  it('refuses measurePowerSecs below what the harness accepts', () => {
    expect(problems((s) => (s.codecarbon.measurePowerSecs = 0.05))).toEqual([
      'codecarbon.measurePowerSecs: must be at least 0.1 s (the harness refuses less)',
    ]);
    expect(problems((s) => (s.codecarbon.measurePowerSecs = MIN_MEASURE_POWER_SECS))).toEqual([]);
  });

  it('refuses study files outside the project: absolute, climbing out, control characters', () => {
    for (const p of ['/home/researcher/.ssh/id_ed25519', '../../.ssh/id_ed25519', 'data/../../x', 'data/a\nb']) {
      expect(problems((s) => (s.datasetPath = p))).toEqual([
        expect.stringMatching(/^datasetPath: must be a path inside the project/),
      ]);
      expect(problems((s) => (prompt(s, 1).fewShotExamplesPath = p))).toEqual([
        expect.stringMatching(/^prompts\.1\.fewShotExamplesPath: must be a path inside the project/),
      ]);
    }
    expect(problems((s) => (prompt(s, 0).templatePath = '/etc/passwd'))).toHaveLength(1);
  });

  it('refuses a revision or reasoning parser that is not a plain name', () => {
    expect(problems((s) => (model(s, 'phase2a', 0).revision = '../../api/whoami'))).toEqual([
      'phases.1.models.0.revision: must not contain . or .. parts',
    ]);
    expect(problems((s) => (model(s, 'phase2a', 1).reasoningParser = 'x; rm -rf /'))).toHaveLength(1);
  });
});

describe('validateWorkflowInput', () => {
  const failure = (fn: () => unknown): ApplicationFailure => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ApplicationFailure) return err;
      throw err;
    }
    throw new Error('did not throw');
  };

  it('re-parsing an already parsed study is idempotent', () => {
    const once = validateWorkflowInput({ study: base }).study;
    const twice = validateWorkflowInput({ study: JSON.parse(JSON.stringify(once)) as unknown }).study;
    expect(twice).toEqual(base);
    expect(JSON.stringify(twice)).toBe(JSON.stringify(base));
  });

  it('refuses a study the loader would refuse, with a non-retryable StudyInvalidError', () => {
    const f = failure(() =>
      validateWorkflowInput({ study: { ...base, study: '../../x', datasetPath: '/home/u/.ssh/id_ed25519' } }),
    );
    expect(f.type).toBe('StudyInvalidError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/study: lower-case letters/);
    expect(f.message).toMatch(/datasetPath: must be a path inside the project/);
  });

  it("refuses an unknown phase and a model that is not exactly one of the phase's models", () => {
    expect(failure(() => validateWorkflowInput({ study: base, phaseId: 'phase9' })).message).toMatch(
      /phaseId: no phase phase9/,
    );
    const m = model(base, 'phase2a', 0);
    expect(validateWorkflowInput({ study: base, phaseId: 'phase2a', model: m }).model).toEqual(m);
    const injected = { ...m, sampling: { ...m.sampling, maxTokens: 10_000_000 } };
    expect(failure(() => validateWorkflowInput({ study: base, phaseId: 'phase2a', model: injected })).message).toMatch(
      /model: Qwen\/Qwen3-30B-A3B-Instruct-2507 is not one of phase phase2a's models/,
    );
    // A model of another phase is refused too.
    expect(() => validateWorkflowInput({ study: base, phaseId: 'phase2b', model: m })).toThrow(
      /not one of phase phase2b/,
    );
    const bad = { ...m, sampling: { ...m.sampling, maxTokens: -5 } };
    expect(() => validateWorkflowInput({ study: base, phaseId: 'phase2a', model: bad })).toThrow(/\(invalid model\)/);
  });
});

describe('the study loader on hostile files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'study-hostile-'));
  const rq1 = join(process.cwd(), 'studies/rq1.yaml');

  it('refuses a file over the size limit before reading it', () => {
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `extends: ${rq1}\n`);
    truncateSync(big, 50 * 1024 * 1024); // sparse: 50 MB of NULs after the first line
    expect(() => loadStudyFile(big)).toThrow(new RegExp(`over the limit of ${MAX_STUDY_FILE_BYTES} bytes`));
  });

  it('refuses an extends target that is not a regular file, unread', () => {
    const zero = join(dir, 'zero.yaml');
    writeFileSync(zero, 'extends: /dev/zero\nstudy: x\n');
    expect(() => loadStudyFile(zero)).toThrow(/\/dev\/zero is not a valid study file:\n {2}- not a regular file/);
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const viaFifo = join(dir, 'via-fifo.yaml');
    writeFileSync(viaFifo, `extends: ${fifo}\n`);
    // Opening a FIFO for reading would wait for a writer for ever.
    expect(() => loadStudyFile(viaFifo)).toThrow(/not a regular file/);
    const viaDir = join(dir, 'via-dir.yaml');
    writeFileSync(viaDir, `extends: ${dir}\n`);
    expect(() => loadStudyFile(viaDir)).toThrow(/not a regular file/);
  });

  it("does not echo another file's contents in a YAML error", () => {
    const credentials = join(dir, 'credentials');
    writeFileSync(
      credentials,
      '[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key: [s3cr3t-value\nx: !s3cr3t-tag y\n',
    );
    const file = join(dir, 'creds.yaml');
    writeFileSync(file, `extends: ${credentials}\n`);
    let message = '';
    try {
      loadStudyFile(file);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/cannot read YAML: .* at line \d+, column \d+/);
    expect(message).not.toMatch(/AKIA|s3cr3t|aws_/);
  });
});

describe('study file paths (the worker and the CLI use the same rules)', () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'study-root-')));
  const outside = realpathSync(mkdtempSync(join(tmpdir(), 'study-outside-')));
  mkdirSync(join(root, 'data'));
  writeFileSync(join(root, 'data', 'ok.jsonl'), '{}\n');
  writeFileSync(join(outside, 'id_ed25519'), 'PRIVATE KEY\n');
  symlinkSync(join(outside, 'id_ed25519'), join(root, 'data', 'key.jsonl'));
  symlinkSync('/dev/zero', join(root, 'data', 'zero.jsonl'));
  symlinkSync(join(root, 'data', 'ok.jsonl'), join(root, 'data', 'inside-link.jsonl'));
  const study = (datasetPath: string) => ({ datasetPath, prompts: [] });
  const check = (p: string) => resolveStudyFiles({ study: study(p), projectRoot: root }).problems;

  it('accepts regular files inside the project, also through links that stay inside', () => {
    expect(check('data/ok.jsonl')).toEqual([]);
    expect(check('data/inside-link.jsonl')).toEqual([]);
  });

  it('refuses absolute paths, paths that climb out and links that point out', () => {
    expect(check(join(outside, 'id_ed25519'))).toEqual([
      expect.stringMatching(/^datasetPath: .* is outside the project/),
    ]);
    expect(check('../x')).toEqual([expect.stringMatching(/outside the project/)]);
    expect(check('data/key.jsonl')).toEqual(['datasetPath: data/key.jsonl is a link to a file outside the project']);
    expect(check('data/zero.jsonl')).toEqual([expect.stringMatching(/link to a file outside the project/)]);
  });

  it('refuses a directory and a special file inside the project', () => {
    expect(check('data')).toEqual(['datasetPath: data is not a regular file']);
    execFileSync('mkfifo', [join(root, 'data', 'fifo')]);
    expect(check('data/fifo')).toEqual(['datasetPath: data/fifo is not a regular file']);
  });

  it("checkStudyFiles (the CLI's start) applies them", () => {
    expect(() => checkStudyFiles({ ...base, datasetPath: 'data/key.jsonl' }, root, 'x.yaml')).toThrow(
      /datasetPath: data\/key\.jsonl is a link to a file outside the project/,
    );
  });
});
