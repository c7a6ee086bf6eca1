// Field schemas the study file's pieces share: positive ints, ports, pod-side and project paths, and phase overrides
// of a study-wide settings object.
import { z } from 'zod';
import { WORKSPACE_PATH_RE } from '../shared/constants.js';

export const positiveInt = z.number().int().positive();
export const port = z.number().int().min(1).max(65535);
export const hasDotSegment = (p: string) => p.split('/').some((part) => part === '.' || part === '..');

/** A pod-side directory: only the characters the workspace probe keeps, no `.`/`..` parts. */
export const workspacePath = z
  .string()
  .regex(WORKSPACE_PATH_RE, 'must be an absolute path of letters, digits and . _ - / only')
  .refine((p) => !hasDotSegment(p), 'must not contain . or .. parts');

/**
 * A file the worker reads and uploads (dataset, template, few-shot examples): relative to the project root and
 * inside it. Symlinks and special files are refused where the file is opened (src/study/files.ts).
 */
export const projectFilePath = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..') && !/[\0\n\r]/.test(p),
    'must be a path inside the project, relative to its root (no leading /, no .., no control characters)',
  );

/**
 * A phase's overrides of a study-wide settings object: every field optional and without its default. (`.partial()`
 * keeps defaults, so an override of one field would silently reset every defaulted field to its default.)
 */
export function overridesOf<S extends z.ZodObject>(schema: S): z.ZodType<Partial<z.output<S>>> {
  const shape = Object.fromEntries(
    Object.entries(schema.shape as Record<string, z.ZodType>).map(([key, field]) => [
      key,
      (field instanceof z.ZodDefault ? (field.unwrap() as z.ZodType) : field).optional(),
    ]),
  );
  return z.strictObject(shape) as unknown as z.ZodType<Partial<z.output<S>>>;
}
