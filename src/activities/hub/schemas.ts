import { z } from 'zod';

/** `GET /api/models/{repo}/revision/{rev}?blobs=true` (what huggingface_hub's `files_metadata=True` sends). */
export const ModelInfoSchema = z.object({
  id: z.string(),
  /** The commit the revision resolves to. */
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  siblings: z.array(
    z.object({
      rfilename: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      lfs: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional(),
    }),
  ),
});
export type ModelInfo = z.infer<typeof ModelInfoSchema>;
