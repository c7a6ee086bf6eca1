// Applies a named fault scenario to the running sandbox daemon: `npm run scenario -- <name>`, `npm run scenario --
// --list`. Start the sandbox first (`npm run start-workflow -- <phase> --sandbox --detach` or `npm run sandbox -- up`),
// apply the scenario, then start (or let run) the workflow; `npm run scenario -- none` clears every fault.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonInfoSchema, sandboxPaths } from './services.js';
import { httpSandboxControl, SCENARIOS, scenarioByName } from './scenarios.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(args: string[]): Promise<number> {
  const name = args[0];
  if (!name || name === '--list' || name === '--help') {
    for (const s of SCENARIOS.values()) console.log(`${s.name}\n  ${s.description}\n`);
    return name ? 0 : 2;
  }
  const scenario = scenarioByName(name);
  const infoPath = sandboxPaths(resolve(ROOT)).daemonInfo;
  if (!existsSync(infoPath)) {
    console.error('the sandbox is not running: start it with `npm run sandbox -- up` (or start-workflow --sandbox)');
    return 1;
  }
  const info = DaemonInfoSchema.parse(JSON.parse(readFileSync(infoPath, 'utf8')));
  await scenario.apply(httpSandboxControl({ runpodControlUrl: info.controlUrl, hfUrl: info.hfUrl }));
  console.log(`applied scenario ${scenario.name}: ${scenario.description}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
