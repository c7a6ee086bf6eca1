// The synthetic VulTrial-schema dataset and few-shot file: shape, balance, duplicates, and no few-shot overlap.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

const root = fileURLToPath(new URL('../../', import.meta.url));
const VULTRIAL_FIELDS = [
  'idx',
  'project',
  'commit_id',
  'project_url',
  'commit_url',
  'commit_message',
  'target',
  'func',
  'func_hash',
  'file_name',
  'file_hash',
  'cwe',
  'cve',
  'cve_desc',
  'nvd_url',
] as const;

// func_hash / file_hash are 128-bit integers, as in PrimeVul: JSON.parse rounds them, so their digits are checked
// on the raw line instead.
const RowSchema = z.object({
  idx: z.number().int().positive(),
  project: z.string().min(1),
  commit_id: z.string().regex(/^[0-9a-f]{40}$/),
  project_url: z.url(),
  commit_url: z.url(),
  commit_message: z.string().min(1),
  target: z.union([z.literal(0), z.literal(1)]),
  func: z.string().min(20),
  func_hash: z.number(),
  file_name: z.string().min(1),
  file_hash: z.number().nullable(),
  cwe: z.array(z.string().regex(/^CWE-\d+$/)).length(1),
  cve: z.string().regex(/^CVE-\d{4}-\d{4,}$/),
  cve_desc: z.string().min(1),
  nvd_url: z.url(),
});
type Row = z.infer<typeof RowSchema>;

function readJsonl(rel: string): { lines: string[]; rows: Row[] } {
  const lines = readFileSync(`${root}${rel}`, 'utf8').split('\n');
  expect(lines.pop()).toBe(''); // ends with a newline
  return { lines, rows: lines.map((l) => RowSchema.parse(JSON.parse(l))) };
}

// The harness compares sources whitespace-insensitively (pod/harness/dataset.py normalise_source).
const normalise = (func: string): string => func.replace(/\s+/g, ' ').trim();

describe('data/synthetic-vultrial.jsonl', () => {
  const { lines, rows } = readJsonl('data/synthetic-vultrial.jsonl');

  it('has 50 lines, 48 unique idx, and 24/24 labels after dedup (first copy wins)', () => {
    expect(lines).toHaveLength(50);
    const unique = new Map<number, Row>();
    for (const r of rows) if (!unique.has(r.idx)) unique.set(r.idx, r);
    expect(unique.size).toBe(48);
    const labels = [...unique.values()].map((r) => r.target);
    expect(labels.filter((t) => t === 1)).toHaveLength(24);
    expect(labels.filter((t) => t === 0)).toHaveLength(24);
    expect(new Set([...unique.values()].map((r) => normalise(r.func))).size).toBe(48);
  });

  it('repeats exactly two benign rows byte-for-byte, as the real file does', () => {
    const seen = new Map<number, string>();
    const dups: string[] = [];
    lines.forEach((line, i) => {
      const idx = rows[i]?.idx ?? -1;
      const first = seen.get(idx);
      if (first === undefined) seen.set(idx, line);
      else {
        expect(line).toBe(first);
        dups.push(line);
      }
    });
    expect(dups).toHaveLength(2);
    for (const d of dups) expect(d).toContain('"target": 0');
  });

  it('has every VulTrial field, in order, with the real types', () => {
    lines.forEach((line, i) => {
      expect(Object.keys(JSON.parse(line) as object)).toEqual(VULTRIAL_FIELDS);
      expect(line).toMatch(/"func_hash": \d+, /);
      expect(line).toMatch(/"file_hash": (\d+|null), /);
      expect(line).toMatch(/^[\x20-\x7e]+$/);
      const r = rows[i];
      if (!r) throw new Error('row missing');
      // In the real file file_hash is null exactly for file names without an extension.
      expect(r.file_hash === null).toBe(!r.file_name.includes('.'));
      expect(r.commit_url).toBe(`${r.project_url}/commit/${r.commit_id}`);
      expect(r.nvd_url.endsWith(r.cve)).toBe(true);
    });
  });
});

describe('prompts/few-shot-examples.jsonl', () => {
  const dataset = readJsonl('data/synthetic-vultrial.jsonl').rows;
  const lines = readFileSync(`${root}prompts/few-shot-examples.jsonl`, 'utf8').trimEnd().split('\n');
  const examples = lines.map((l) => RowSchema.extend({ explanation: z.string().min(1) }).parse(JSON.parse(l)));

  it('has 2 vulnerable and 2 benign distinct examples', () => {
    expect(examples.map((e) => e.target).sort()).toEqual([0, 0, 1, 1]);
    expect(new Set(examples.map((e) => normalise(e.func))).size).toBe(4);
  });

  it('never uses an idx or a function of the evaluated set', () => {
    const ids = new Set(dataset.map((r) => r.idx));
    const funcs = new Set(dataset.map((r) => normalise(r.func)));
    for (const e of examples) {
      expect(ids.has(e.idx)).toBe(false);
      expect(funcs.has(normalise(e.func))).toBe(false);
    }
  });
});

describe('scripts/make-synthetic-dataset.ts', () => {
  it('reproduces the committed files exactly', async () => {
    const run = promisify(execFile);
    const tsx = `${root}node_modules/.bin/tsx`;
    await expect(run(tsx, ['scripts/make-synthetic-dataset.ts', '--check'], { cwd: root })).resolves.toBeDefined();
  });
});
