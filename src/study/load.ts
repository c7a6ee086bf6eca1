import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument, YAMLError } from 'yaml';
import { MAX_STUDY_FILE_BYTES } from '../shared/constants.js';
import { resolveStudyFiles } from './files.js';
import { StudySchema, type Study } from './schema.js';

/** A study file that cannot be used; the message names each field and its problem. */
export class StudyInvalidError extends Error {
  override readonly name = 'StudyInvalidError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file} is not a valid study file:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Overlay semantics: objects merge key by key; arrays of objects that all carry `id` (phases) merge
 * element by element on that id; any other array or value replaces the base.
 */
export function mergeOverlay(base: unknown, overlay: unknown): unknown {
  if (isPlain(base) && isPlain(overlay)) {
    const out: Plain = { ...base };
    for (const [k, v] of Object.entries(overlay)) out[k] = k in base ? mergeOverlay(base[k], v) : v;
    return out;
  }
  const byId = (a: unknown): a is Plain[] => Array.isArray(a) && a.every((x) => isPlain(x) && typeof x.id === 'string');
  if (byId(base) && byId(overlay)) {
    const merged = base.map((b) => {
      const o = overlay.find((x) => x.id === b.id);
      return o ? mergeOverlay(b, o) : b;
    });
    const extra = overlay.filter((o) => !base.some((b) => b.id === o.id));
    return [...merged, ...extra];
  }
  return overlay;
}

/**
 * A study file's text: a regular file of at most `maxFileBytes`, checked on the opened descriptor before anything is
 * read (`/dev/zero` or a FIFO is refused unread; a file growing while read is cut off and refused). Also used for the
 * files kept with a study (its metadata file); `what` names the kind of file in the size problems.
 * @throws StudyInvalidError naming the file and the problem
 */
export function readCapped(file: string, maxFileBytes = MAX_STUDY_FILE_BYTES, what = 'a study file'): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it has no effect on a regular file.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new StudyInvalidError(file, [code === 'ENOENT' ? 'file not found' : `cannot open (${code ?? 'error'})`]);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new StudyInvalidError(file, ['not a regular file']);
    if (st.size > maxFileBytes) {
      throw new StudyInvalidError(file, [`${st.size} bytes, over the limit of ${maxFileBytes} bytes for ${what}`]);
    }
    const buf = Buffer.alloc(maxFileBytes + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > maxFileBytes) throw new StudyInvalidError(file, [`over the limit of ${maxFileBytes} bytes for ${what}`]);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * The YAML library's messages quote the offending lines; an `extends:` to another file (a credentials file) would
 * print its secrets. Keep only the kind of error and where it is.
 */
function yamlProblem(err: YAMLError): string {
  const what = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '').split(': ')[0];
  const at = err.linePos?.[0];
  return `cannot read YAML: ${what ?? err.code}${at ? ` at line ${at.line}, column ${at.col}` : ''}`;
}

function readYaml(file: string): Plain {
  const text = readCapped(file);
  // logLevel silent: warnings would be printed to stderr with the offending line quoted.
  const parsed = parseDocument(text, { logLevel: 'silent' });
  const [first] = parsed.errors;
  if (first) throw new StudyInvalidError(file, [yamlProblem(first)]);
  let doc: unknown;
  try {
    doc = parsed.toJS();
  } catch (err) {
    // Alias expansion past the library's limit (a "billion laughs" document) or a bad alias.
    throw new StudyInvalidError(file, [`cannot read YAML: ${err instanceof YAMLError ? err.code : 'bad aliases'}`]);
  }
  if (!isPlain(doc)) throw new StudyInvalidError(file, ['the top level must be a mapping']);
  return doc;
}

/** Reads a study file, following `extends: <file>` (relative to the file), without validating. */
function readWithExtends(file: string, seen: string[] = []): Plain {
  if (seen.includes(file)) throw new StudyInvalidError(file, [`extends cycle: ${[...seen, file].join(' -> ')}`]);
  const doc = readYaml(file);
  const { extends: parent, ...rest } = doc;
  if (parent === undefined) return rest;
  if (typeof parent !== 'string') throw new StudyInvalidError(file, ['extends: must be a file path']);
  const base = readWithExtends(resolve(dirname(file), parent), [...seen, file]);
  return mergeOverlay(base, rest) as Plain;
}

/** Validates a parsed document; pure. */
export function parseStudy(doc: unknown, file = '<study>'): Study {
  const r = StudySchema.safeParse(doc);
  if (r.success) return r.data;
  throw new StudyInvalidError(
    file,
    r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`),
  );
}

/** Loads and validates a study file (with its `extends` chain). */
export function loadStudyFile(file: string): Study {
  const doc = readWithExtends(resolve(file));
  // Each file is capped; the merged study travels as a workflow input, so cap it too.
  const bytes = Buffer.byteLength(JSON.stringify(doc));
  if (bytes > MAX_STUDY_FILE_BYTES) {
    throw new StudyInvalidError(file, [
      `the merged study is ${bytes} bytes, over the limit of ${MAX_STUDY_FILE_BYTES}`,
    ]);
  }
  return parseStudy(doc, file);
}

/**
 * Every local file a study names, with the worker's rules (src/study/files.ts): inside the project after symlinks,
 * a regular file. So a bad path fails before anything is reserved.
 */
export function checkStudyFiles(study: Study, rootDir: string, file = '<study>'): void {
  const { problems } = resolveStudyFiles({ study, projectRoot: rootDir });
  if (problems.length) throw new StudyInvalidError(file, problems);
}
