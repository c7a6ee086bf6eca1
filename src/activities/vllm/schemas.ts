import { z } from 'zod';

/** vLLM `GET /v1/models`. */
export const ModelsListSchema = z.object({ data: z.array(z.object({ id: z.string() })) });

/** vLLM `GET /version`. */
export const VllmVersionSchema = z.object({ version: z.string() });
