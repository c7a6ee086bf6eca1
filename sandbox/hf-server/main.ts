// Standalone sandbox Hub: `tsx sandbox/hf-server/main.ts --port 8090`, then `HF_ENDPOINT=http://127.0.0.1:8090 hf download ...`.
import { parseArgs } from 'node:util';
import { startHfServer } from './server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    shards: { type: 'string' },
    'shard-bytes': { type: 'string' },
    /** Extra repo ids to serve besides the Qwen3 defaults (repeatable). */
    model: { type: 'string', multiple: true, default: [] },
    quiet: { type: 'boolean', default: false },
  },
  strict: true,
});

const toInt = (name: string, raw: string | undefined): number | undefined => {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer: ${raw}`);
  return n;
};

const server = await startHfServer({
  port: toInt('port', values.port),
  host: values.host,
  defaultShardCount: toInt('shards', values.shards),
  defaultShardBytes: toInt('shard-bytes', values['shard-bytes']),
  models: values.model.map((repoId) => ({ repoId })),
  log: values.quiet ? undefined : (line) => console.log(line),
});
console.log(`hf-server listening on ${server.url}`);
for (const repoId of server.repoIds()) console.log(`  ${repoId} @ ${server.getRepo(repoId)?.commitSha ?? '?'}`);
console.log(`faults: POST ${server.url}/_control/faults {"faults":[...]}`);

const shutdown = (): void => {
  void server.close().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
