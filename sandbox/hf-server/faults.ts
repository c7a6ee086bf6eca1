// Fault injection for the sandbox Hub, per file. Parsed with zod because POST /_control/faults takes them as JSON.
import { z } from 'zod';

/** `file` value that targets the model-info API (`/api/models/...`) instead of a file. */
export const MODEL_INFO_FAULT_TARGET = '@model-info';

const target = {
  /** Only this repo; any repo when absent. */
  repoId: z.string().min(1).optional(),
  /** Path in the repo (`model-00001-of-00002.safetensors`), or {@link MODEL_INFO_FAULT_TARGET}. */
  file: z.string().min(1),
};

export const HfFaultSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('stall'),
    ...target,
    /** Bytes of the file (absolute offset) sent before the response hangs, open, until the client goes away. */
    afterBytes: z.number().int().nonnegative(),
    /** How many GETs stall; every one while the fault is set when absent. */
    count: z.number().int().positive().optional(),
  }),
  z.object({
    kind: z.literal('error5xx'),
    ...target,
    /** How many matching requests fail. */
    count: z.number().int().positive(),
    status: z.number().int().min(500).max(599).default(500),
    /** Which methods fail; HEAD and GET when absent. */
    methods: z.array(z.enum(['GET', 'HEAD'])).optional(),
    /**
     * The error text in the body (the `hf` CLI prints it), e.g. a Xet CAS error a real CDN returns. Default: the
     * Hub's generic 500 text.
     */
    message: z.string().min(1).optional(),
  }),
  z.object({
    kind: z.literal('truncate'),
    ...target,
    /**
     * `close-early`: declare the full Content-Length, send `keepBytes` of the file, then destroy the socket.
     * `short-file`: serve the first `keepBytes` as if they were the whole file (HEAD sizes included), so the
     * client accepts it and a corrupt shard lands on disk.
     */
    mode: z.enum(['close-early', 'short-file']),
    keepBytes: z.number().int().nonnegative(),
    /** How many GETs are cut; every one while the fault is set when absent. */
    count: z.number().int().positive().optional(),
  }),
]);

export const HfFaultListSchema = z.object({ faults: z.array(HfFaultSchema) });

export type HfFault = z.input<typeof HfFaultSchema>;
export type ParsedHfFault = z.output<typeof HfFaultSchema>;

export interface ActiveFault {
  fault: ParsedHfFault;
  /** Remaining uses; null for a fault without a count (it lasts until cleared). */
  remaining: number | null;
}

export function activateFaults(faults: readonly HfFault[]): ActiveFault[] {
  return faults.map((f) => {
    const fault = HfFaultSchema.parse(f);
    return { fault, remaining: fault.count ?? null };
  });
}

/** Uses up one application of the fault. */
export function consumeFault(active: ActiveFault): void {
  if (active.remaining !== null) active.remaining -= 1;
}

/** The first live fault of `kind` that targets this repo/file and accepts `method`. */
export function findFault<K extends ParsedHfFault['kind']>(
  active: readonly ActiveFault[],
  query: { kind: K; repoId: string; file: string; method: string },
): (ActiveFault & { fault: Extract<ParsedHfFault, { kind: K }> }) | undefined {
  return active.find(
    (a): a is ActiveFault & { fault: Extract<ParsedHfFault, { kind: K }> } =>
      a.fault.kind === query.kind &&
      (a.remaining === null || a.remaining > 0) &&
      a.fault.file === query.file &&
      (a.fault.repoId === undefined || a.fault.repoId === query.repoId) &&
      (a.fault.kind !== 'error5xx' ||
        a.fault.methods === undefined ||
        a.fault.methods.includes(query.method as 'GET' | 'HEAD')),
  );
}
