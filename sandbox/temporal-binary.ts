import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

/** Search attributes every dev server of ours registers (see src/shared/search-attributes.ts). */
export const DEV_SERVER_SEARCH_ATTRIBUTE_ARGS = [
  '--search-attribute',
  'Study=Keyword',
  '--search-attribute',
  'Phase=Keyword',
  '--search-attribute',
  'Model=Keyword',
];

/**
 * The Temporal CLI to run the dev server with: `TEMPORAL_CLI_PATH`, else `temporal` on PATH, else the
 * project-local build from `scripts/setup.sh` (`.tools/bin/temporal`).
 */
export function findTemporalBinary(rootDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPORAL_CLI_PATH) {
    if (!existsSync(env.TEMPORAL_CLI_PATH))
      throw new Error(`TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH} does not exist`);
    return env.TEMPORAL_CLI_PATH;
  }
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'temporal');
    if (existsSync(candidate)) return candidate;
  }
  const local = resolve(rootDir, '.tools/bin/temporal');
  if (existsSync(local)) return local;
  throw new Error(
    'No Temporal CLI found. Run `npm run setup` (builds github.com/temporalio/cli v1.5.1 into .tools/bin), ' +
      'put `temporal` on PATH, or set TEMPORAL_CLI_PATH.',
  );
}
