import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
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

function readYaml(file: string): Plain {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new StudyInvalidError(file, [`cannot read YAML: ${(err as Error).message}`]);
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
  const abs = resolve(file);
  if (!existsSync(abs)) throw new StudyInvalidError(file, ['file not found']);
  return parseStudy(readWithExtends(abs), file);
}

/** Every local file a study names, so a bad path fails before anything is reserved. */
export function checkStudyFiles(study: Study, rootDir: string, file = '<study>'): void {
  const paths: [string, string][] = [['datasetPath', study.datasetPath]];
  study.prompts.forEach((p, i) => {
    paths.push([`prompts.${i}.templatePath`, p.templatePath]);
    if (p.fewShotExamplesPath) paths.push([`prompts.${i}.fewShotExamplesPath`, p.fewShotExamplesPath]);
  });
  const missing = paths
    .filter(([, p]) => !existsSync(isAbsolute(p) ? p : resolve(rootDir, p)))
    .map(([field, p]) => `${field}: file not found: ${p}`);
  if (missing.length) throw new StudyInvalidError(file, missing);
}
