import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countSamples, maxOverlap, median, mulberry32 } from '../../sandbox/chaos/measure.js';
import { loadStudyFile } from '../../src/study/load.js';
import { modelSlug } from '../../src/shared/constants.js';

describe('chaos figures', () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  it('counts two pods alive at once as one duplicate, a replacement after a termination as none', () => {
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    expect(maxOverlap([{ createdAt: at(0), deletedAt: at(10) }])).toBe(1);
    // replaced: the second is created after the first is gone (and at the very second it goes)
    expect(
      maxOverlap([
        { createdAt: at(0), deletedAt: at(10) },
        { createdAt: at(10), deletedAt: at(20) },
      ]),
    ).toBe(1);
    // a lost create's duplicate: both billing until one is terminated; a pod never deleted counts to the end
    expect(
      maxOverlap([
        { createdAt: at(0), deletedAt: null },
        { createdAt: at(5), deletedAt: at(6) },
      ]),
    ).toBe(2);
  });

  it('finds lost and duplicated samples in the run folders that came home', () => {
    dir = mkdtempSync(join(tmpdir(), 'chaos-'));
    const study = { ...loadStudyFile('studies/rq1.sandbox.yaml'), study: 'c1' };
    const repoId = 'Qwen/Qwen3-30B-A3B-Instruct-2507';
    const [first, second] = study.prompts;
    const write = (prompt: string, run: string, ids: number[], manifest = true) => {
      const d = join(dir ?? '', 'c1', 'phase2a', modelSlug(repoId), prompt, run);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'predictions.jsonl'), ids.map((id) => JSON.stringify({ id })).join('\n') + '\n');
      if (manifest) writeFileSync(join(d, 'manifest.json'), '{}');
    };
    write(first?.name ?? '', 'r1', [1, 2, 3, 4]);
    write(second?.name ?? '', 'r2', [1, 2, 2]);
    write(second?.name ?? '', 'r3', [4, 5, 6], false); // never came home: not counted
    expect(countSamples(dir, study, 'phase2a', repoId, 4)).toEqual({ lost: 2, duplicated: 1 });
  });

  it('median and the seeded generator', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const a = mulberry32(7);
    const b = mulberry32(7);
    const xs = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Set(xs).size).toBe(3);
  });
});
