// Writes data/synthetic-vultrial.jsonl and prompts/few-shot-examples.jsonl: invented C functions in the VulTrial
// (PrimeVul) row schema, for tests and the sandbox demo. The cases live in scripts/synthetic-dataset/*.yaml; this
// file turns them into rows. Deterministic: rerunning produces identical bytes.
// Usage: npx tsx scripts/make-synthetic-dataset.ts [--check]   (--check fails if the files on disk differ)
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';

const FnSchema = z.strictObject({ name: z.string().min(1), code: z.string().min(1) });
type Fn = z.infer<typeof FnSchema>;

const CaseInfoSchema = z.strictObject({
  project: z.string().min(1),
  fileName: z.string().min(1),
  cwe: z.string().regex(/^CWE-\d+$/),
  /** What the fixing commit says; also the CVE description's gist. */
  summary: z.string().min(1),
  cveDesc: z.string().min(1),
});
type CaseInfo = z.infer<typeof CaseInfoSchema>;

const PairSchema = CaseInfoSchema.extend({ vulnerable: FnSchema, fixed: FnSchema });
// A single carries exactly one function; which one it is gives the row's label.
const SingleSchema = CaseInfoSchema.extend({ vulnerable: FnSchema.optional(), fixed: FnSchema.optional() }).transform(
  ({ vulnerable, fixed, ...c }, ctx) => {
    const fn = vulnerable ?? fixed;
    if (fn === undefined || (vulnerable !== undefined && fixed !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a single needs exactly one of vulnerable / fixed' });
      return z.NEVER;
    }
    return { ...c, target: vulnerable ? (1 as const) : (0 as const), fn };
  },
);
const FewShotSchema = CaseInfoSchema.extend({
  target: z.union([z.literal(0), z.literal(1)]),
  fn: FnSchema,
  explanation: z.string().min(1),
});

const root = fileURLToPath(new URL('..', import.meta.url));

function readCases<T extends z.ZodType>(file: string, schema: T): z.infer<T>[] {
  const rel = `scripts/synthetic-dataset/${file}`;
  const result = z.array(schema).safeParse(parse(readFileSync(`${root}${rel}`, 'utf8')));
  if (!result.success) throw new Error(`${rel} is invalid:\n${z.prettifyError(result.error)}`);
  return result.data;
}

const PAIRS = readCases('pairs.yaml', PairSchema);
const SINGLES = readCases('singles.yaml', SingleSchema);
const FEW_SHOT = readCases('few-shot.yaml', FewShotSchema);

type Value = string | number | bigint | null | readonly string[];

const ORG_URL = 'https://github.com/synthetic-vultrial';

function hex(kind: string, data: string, algo: 'sha1' | 'sha256' = 'sha1'): string {
  return createHash(algo).update(`${kind}:${data}`).digest('hex');
}

// PrimeVul hashes are 64- to 128-bit integers; they exceed JS numbers, so they are written as raw digits.
function bigHash(kind: string, data: string): bigint {
  return BigInt(`0x${hex(kind, data, 'sha256').slice(0, 32)}`);
}

function row(args: {
  idx: number;
  c: CaseInfo;
  cveNumber: number;
  commitKey: string;
  target: 0 | 1;
  fn: Fn;
  extra?: Record<string, Value>;
}): Record<string, Value> {
  const { c } = args;
  const commitId = hex('commit', args.commitKey);
  const cve = `CVE-2099-${String(args.cveNumber).padStart(5, '0')}`;
  const hasExtension = c.fileName.includes('.');
  return {
    idx: args.idx,
    project: c.project,
    commit_id: commitId,
    project_url: `${ORG_URL}/${c.project}`,
    commit_url: `${ORG_URL}/${c.project}/commit/${commitId}`,
    commit_message: `${c.summary}\n\nReported-by: Synthetic Fuzzer <fuzz@example.invalid>\nSigned-off-by: Sandbox Maintainer <maint@example.invalid>`,
    target: args.target,
    func: args.fn.code,
    func_hash: bigHash('func', args.fn.code),
    file_name: c.fileName,
    // In the real file file_hash is null exactly when the file name has no extension.
    file_hash: hasExtension ? bigHash('file', `${c.project}/${c.fileName}`) : null,
    cwe: [c.cwe],
    cve,
    cve_desc: c.cveDesc,
    nvd_url: `https://nvd.nist.gov/vuln/detail/${cve}`,
    ...args.extra,
  };
}

// Python's json.dumps layout (", " and ": " separators, ASCII only), which the real file uses.
function pyJson(obj: Record<string, Value>): string {
  const value = (v: Value): string => {
    if (v === null) return 'null';
    if (typeof v === 'bigint' || typeof v === 'number') return v.toString();
    if (typeof v === 'string') return JSON.stringify(v);
    return `[${v.map((s) => JSON.stringify(s)).join(', ')}]`;
  };
  const line = `{${Object.entries(obj)
    .map(([k, v]) => `${JSON.stringify(k)}: ${value(v)}`)
    .join(', ')}}`;
  if (!/^[\x20-\x7e]*$/.test(line)) throw new Error(`non-ASCII or control character in row ${String(obj.idx)}`);
  return line;
}

function buildDataset(): string[] {
  const rows: Record<string, Value>[] = [];
  let cveNumber = 31000;
  PAIRS.forEach((c, i) => {
    const base = 240000 + i * 7919; // adjacent idx for the two halves of a pair, as in PrimeVul
    cveNumber += 17;
    const commitKey = `${c.project}/${c.fileName}/${c.summary}`;
    rows.push(row({ idx: base, c, cveNumber, commitKey, target: 1, fn: c.vulnerable }));
    rows.push(row({ idx: base + 1, c, cveNumber, commitKey, target: 0, fn: c.fixed }));
  });
  SINGLES.forEach((c, i) => {
    cveNumber += 17;
    const commitKey = `${c.project}/${c.fileName}/${c.summary}`;
    rows.push(row({ idx: 380000 + i * 4211, c, cveNumber, commitKey, target: c.target, fn: c.fn }));
  });
  // A fixed shuffle (sort by a hash of idx), so pairs are not always adjacent in the file.
  const lines = rows
    .map((r) => ({ key: hex('order', String(r.idx)), line: pyJson(r) }))
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((r) => r.line);
  // Two byte-identical benign duplicates further down, as the real file has (its dedupe keeps the first copy).
  const benign = lines.filter((l) => l.includes('"target": 0'));
  const [dupA, dupB] = [benign[3], benign[11]];
  if (dupA === undefined || dupB === undefined) throw new Error('not enough benign rows');
  lines.splice(30, 0, dupA);
  lines.push(dupB);
  return lines;
}

function buildFewShot(): string[] {
  return FEW_SHOT.map((f, i) =>
    pyJson(
      row({
        idx: 910000 + i * 13,
        c: f,
        cveNumber: 47000 + i * 23,
        commitKey: `few-shot/${f.project}/${f.fn.name}`,
        target: f.target,
        fn: f.fn,
        extra: { explanation: f.explanation },
      }),
    ),
  );
}

const outputs: [string, string[]][] = [
  ['data/synthetic-vultrial.jsonl', buildDataset()],
  ['prompts/few-shot-examples.jsonl', buildFewShot()],
];
const check = process.argv.includes('--check');
let stale = false;
for (const [rel, lines] of outputs) {
  const text = `${lines.join('\n')}\n`;
  if (check) {
    let current: string;
    try {
      current = readFileSync(`${root}${rel}`, 'utf8');
    } catch {
      current = '';
    }
    if (current !== text) {
      console.error(`${rel} is out of date; run: npx tsx scripts/make-synthetic-dataset.ts`);
      stale = true;
    }
  } else {
    writeFileSync(`${root}${rel}`, text);
    console.log(`wrote ${rel} (${lines.length} lines)`);
  }
}
if (stale) process.exitCode = 1;
