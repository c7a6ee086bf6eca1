// One probe of a vLLM server on the pod's loopback, through the pod's shell (curl): health, models, version, warm-up.
import { parseJson, q, type PodShell } from '../ssh/index.js';
import { ModelsListSchema, VllmVersionSchema } from './schemas.js';

export interface VllmProbe {
  /** `GET /health` answers 200. */
  healthy(): Promise<boolean>;
  /** Anything answers HTTP on the port (curl's `000` means nothing does). */
  answers(): Promise<boolean>;
  /** `GET /v1/models` lists the served model name. */
  listsModel(servedModelName: string): Promise<boolean>;
  /** `GET /version`, or `unknown`. */
  version(): Promise<string>;
  /** One short chat completion; the HTTP status it answered (empty when nothing did). */
  warmUp(servedModelName: string): Promise<string>;
}

export function vllmProbe(sh: PodShell, baseUrl: string): VllmProbe {
  const get = async (path: string) => (await sh.exec(`curl -s -m 10 ${q(`${baseUrl}${path}`)}`)).stdout;
  const healthStatus = async () =>
    (await sh.exec(`curl -s -o /dev/null -w '%{http_code}' -m 5 ${q(`${baseUrl}/health`)}`)).stdout.trim();
  return {
    healthy: async () => (await healthStatus()) === '200',
    answers: async () => (await healthStatus()) !== '000',
    listsModel: async (name) => {
      const r = ModelsListSchema.safeParse(parseJson(await get('/v1/models')));
      return r.success && r.data.data.some((m) => m.id === name);
    },
    version: async () => VllmVersionSchema.safeParse(parseJson(await get('/version'))).data?.version ?? 'unknown',
    warmUp: async (name) => {
      const body = JSON.stringify({
        model: name,
        messages: [{ role: 'user', content: 'Say OK.' }],
        max_tokens: 8,
        temperature: 0,
      });
      const r = await sh.exec(
        `curl -s -m 120 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d ${q(body)} ${q(`${baseUrl}/v1/chat/completions`)}`,
      );
      return r.stdout.trim();
    },
  };
}
