import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkStudyFiles, loadStudyFile, mergeOverlay, StudyInvalidError } from '../../src/study/load.js';
import { phaseSettings } from '../../src/study/schema.js';

const write = (dir: string, name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

describe('the real study file', () => {
  it('rq1.yaml describes phase1, phase2a and phase2b with the design models', () => {
    const study = loadStudyFile('studies/rq1.yaml');
    expect(study.phases.map((p) => p.id)).toEqual(['phase1', 'phase2a', 'phase2b']);
    const p2a = study.phases.find((p) => p.id === 'phase2a');
    expect(p2a?.models.map((m) => m.repoId)).toEqual([
      'Qwen/Qwen3-30B-A3B-Instruct-2507',
      'Qwen/Qwen3-30B-A3B-Thinking-2507',
    ]);
    expect(p2a?.target.kind).toBe('runpod');
    expect(study.simulated).toBe(false);
    // Only the thinking model gets a reasoning parser.
    expect(p2a?.models.map((m) => m.reasoningParser ?? null)).toEqual([null, 'deepseek_r1']);
  });

  it('the sandbox overlay keeps the phases but uses its own study name, synthetic data and small numbers', () => {
    const study = loadStudyFile('studies/rq1.sandbox.yaml');
    expect(study.study).toBe('rq1-sandbox');
    expect(study.simulated).toBe(true);
    expect(study.datasetPath).toBe('data/synthetic-vultrial.jsonl');
    expect(study.harness.baselineSeconds).toBeLessThan(10);
    const { phase } = phaseSettings(study, 'phase2a');
    // Merged by phase id: models and candidates come from rq1.yaml, the timeout from the overlay.
    expect(phase.models).toHaveLength(2);
    expect(phase.target.kind === 'runpod' && phase.target.candidates[0]?.gpuTypeId).toBe('NVIDIA H100 80GB HBM3');
    expect(phase.target.kind === 'runpod' && phase.target.podReadyTimeoutMs).toBe(120000);
    checkStudyFiles(study, process.cwd());
  });
});

describe('invalid study files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'study-'));

  it('names each bad field and its problem', () => {
    const file = write(
      dir,
      'bad.yaml',
      `extends: ${join(process.cwd(), 'studies/rq1.yaml')}
study: Bad Name
harness: { concurrency: 0 }
phases:
  - id: phase2a
    models:
      - repoId: not-a-repo
        sampling: { temperature: 0.7, topP: 0.8, topK: 20, maxTokens: 10, seed: 1 }
`,
    );
    let error: unknown;
    try {
      loadStudyFile(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StudyInvalidError);
    const problems = (error as StudyInvalidError).problems.join('\n');
    expect(problems).toMatch(/^study: lower-case letters and digits, single dashes/m);
    expect(problems).toMatch(/^harness\.concurrency: /m);
    expect(problems).toMatch(/^phases\.1\.models\.0\.repoId: must look like owner\/name/m);
  });

  it('rejects unknown fields instead of ignoring them', () => {
    const file = write(
      dir,
      'typo.yaml',
      `extends: ${join(process.cwd(), 'studies/rq1.yaml')}\nvllm: { maxModelLength: 100 }\n`,
    );
    expect(() => loadStudyFile(file)).toThrow(/vllm: Unrecognized key: "maxModelLength"/);
  });

  it('rejects a reasoning parser on a non-thinking model', () => {
    const file = write(
      dir,
      'parser.yaml',
      `extends: ${join(process.cwd(), 'studies/rq1.yaml')}
phases:
  - id: phase2a
    models:
      - repoId: a/b
        reasoningParser: deepseek_r1
        sampling: { temperature: 0.7, topP: 0.8, topK: 20, maxTokens: 10, seed: 1 }
`,
    );
    expect(() => loadStudyFile(file)).toThrow(/phases\.1\.models\.0\.reasoningParser: only thinking models/);
  });

  it('reports missing files by field before anything starts', () => {
    const study = loadStudyFile('studies/rq1.yaml');
    expect(() => checkStudyFiles({ ...study, datasetPath: 'data/nope.jsonl' }, process.cwd(), 'x.yaml')).toThrow(
      /datasetPath: file not found: data\/nope\.jsonl/,
    );
  });

  it('reports YAML syntax errors and missing files', () => {
    expect(() => loadStudyFile(write(dir, 'syntax.yaml', 'study: [unclosed'))).toThrow(/cannot read YAML/);
    expect(() => loadStudyFile(join(dir, 'absent.yaml'))).toThrow(/file not found/);
  });
});

describe('mergeOverlay', () => {
  it('merges objects by key, arrays of {id} by id, and replaces other arrays', () => {
    const merged = mergeOverlay(
      {
        a: { b: 1, c: 2 },
        list: [1, 2],
        phases: [
          { id: 'p1', x: 1 },
          { id: 'p2', x: 2 },
        ],
      },
      {
        a: { c: 3 },
        list: [9],
        phases: [
          { id: 'p2', x: 5 },
          { id: 'p3', x: 6 },
        ],
      },
    );
    expect(merged).toEqual({
      a: { b: 1, c: 3 },
      list: [9],
      phases: [
        { id: 'p1', x: 1 },
        { id: 'p2', x: 5 },
        { id: 'p3', x: 6 },
      ],
    });
  });
});
