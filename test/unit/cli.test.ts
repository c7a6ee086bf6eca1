import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkSandboxMatch,
  parseGateArgs,
  parseImportArgs,
  parseReaperArgs,
  parseSandboxArgs,
  parseStartArgs,
  parseStudyArgs,
  UsageError,
} from '../../src/cli/args.js';

const run = promisify(execFile);

/** The message of the UsageError that `f` throws (fails the test when it returns or throws anything else). */
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('CLI argument checks', () => {
  const gate = (...args: string[]) => parseGateArgs(args, { USER: 'ana' });

  it('refuses bad flags with one line that names the flag', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => gate('approve', '--bogus'), /^unknown option --bogus for gate; see npm run gate -- --help$/],
      [() => parseStartArgs(['phase2a', '-x']), /^unknown option -x for start; see npm run start-workflow/],
      [() => gate('approve', '--study'), /^--study needs a value/],
      [() => gate('approve', '--study', ''), /^--study needs a value/],
      [() => gate('budget', '--phase-usd', '-5'), /^--phase-usd needs a value .*--phase-usd=<value>/],
      [() => gate('approve', '--study', 'a', '--study', 'b'), /^--study given twice/],
      [() => parseStartArgs(['phase2a', '--study', 'a.yaml', '--study=b.yaml']), /^--study given twice/],
      [() => gate('status', '--sandbox=yes'), /^--sandbox takes no value$/],
      [() => gate('approve', 'phase2b'), /^gate takes one argument; unexpected phase2b$/],
      [() => gate('approve', '--json'), /^--json goes with gate status only$/],
      [() => gate('approve', '--phase-usd', '5'), /^--phase-usd goes with gate budget only$/],
      [() => gate('yes'), /^gate takes status, approve, skip, stop or budget$/],
      [() => parseGateArgs(['approve'], {}), /^gate approve needs --by <your name>/],
      [() => parseGateArgs(['budget', '--phase-usd', '5', '--by', ' '], { USER: 'ana' }), /^--by needs a value$/],
      [() => parseStudyArgs('status', ['rq1']), /^status takes no arguments \(got rq1\)/],
      [() => parseStudyArgs('report', ['--study', 'a', '--study', 'b']), /^--study given twice/],
      [() => parseStartArgs(['--sandbox']), /^which phase\?/],
      [() => parseStartArgs(['phase2a', 'phase2b']), /^start takes one argument; unexpected phase2b$/],
      [() => parseImportArgs(['runs/', '--phase', 'phase1', '--model', 'a', '--model', 'b']), /^--model given twice/],
      [() => parseReaperArgs(['--grace-minutes', 'soon']), /^--grace-minutes must be a number of minutes/],
      [() => parseReaperArgs(['--every-minutes=0']), /^--every-minutes must be a number of minutes above zero/],
      [() => parseSandboxArgs(['up', 'now']), /^sandbox takes up or down$/],
    ];
    for (const [f, message] of cases) expect(refusal(f)).toMatch(message);
  });

  it('takes only finite amounts above zero for a budget raise, and at least one of them', () => {
    for (const bad of ['Infinity', '-Infinity', 'NaN', '1e400', '0', '-5', '0x10', '5 USD', '1,000', ' '])
      expect(refusal(() => gate('budget', `--phase-usd=${bad}`))).toMatch(
        /^--phase-usd (must be an amount in USD above zero, e\.g\. 250 \(got ".*"\)|needs a value)$/,
      );
    expect(refusal(() => gate('budget', '--study-usd=inf'))).toMatch(/^--study-usd must be an amount in USD/);
    expect(refusal(() => gate('budget', '--by', 'ana'))).toMatch(/needs --phase-usd N and\/or --study-usd N/);

    expect(gate('budget', '--phase-usd', '80', '--study-usd=1.5e3')).toEqual({
      study: 'rq1',
      sandbox: false,
      action: 'budget',
      raise: { phaseUsd: 80, studyUsd: 1500, by: 'ana' },
    });
    expect(gate('approve', '--study', 'rq2', '--sandbox', '--by', 'bo', '--note', 'why')).toEqual({
      study: 'rq2',
      sandbox: true,
      action: 'approve',
      by: 'bo',
      reason: 'why',
    });
  });

  it('runs a simulated study in the sandbox only, and only simulated studies there', () => {
    expect(
      refusal(() => checkSandboxMatch({ file: 'studies/rq1.sandbox.yaml', simulated: true, sandbox: false })),
    ).toBe('studies/rq1.sandbox.yaml is a simulated study (simulated: true): run it with --sandbox');
    expect(refusal(() => checkSandboxMatch({ file: 'studies/x.yaml', simulated: false, sandbox: true }))).toMatch(
      /--sandbox runs simulated studies only/,
    );
    expect(() => checkSandboxMatch({ file: 'studies/rq1.yaml', simulated: false, sandbox: false })).not.toThrow();
  });
});

describe('the CLI process on a bad invocation', () => {
  // Stands in for Temporal: a bad invocation must be refused before anything connects to it.
  let server: Server;
  let connections = 0;
  let address = '';
  beforeAll(async () => {
    server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    address = typeof a === 'object' && a ? `127.0.0.1:${a.port}` : '';
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  const cli = (args: string[]) =>
    run('npx', ['tsx', 'src/cli/main.ts', ...args], {
      env: { ...process.env, TEMPORAL_ADDRESS: address, RUNPOD_API_KEY: 'test-key', USER: 'ana' },
    }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );

  it('prints one error line, exits 2 and contacts nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['gate', 'budget', '--phase-usd', 'Infinity'], /^error: --phase-usd must be an amount in USD above zero/],
      [['gate', 'budget', '--phase-usd', '-5'], /^error: --phase-usd needs a value/],
      [['gate', 'approve', '--bogus'], /^error: unknown option --bogus for gate/],
      [['status', '--study', 'a', '--study', 'b'], /^error: --study given twice/],
      [['fetch-results'], /^error: fetch-results needs --pod <pod id> \(or --list\)/],
      [['fetch-results', '--pod', 'abc'], /^error: no kept-pod record for pod abc under /],
      // With a RunPod key set, so it is the simulated study that is refused, not a missing key.
      [['start', 'phase2a', '--study', 'studies/rq1.sandbox.yaml'], /^error: .* is a simulated study .*--sandbox$/],
    ];
    // Two at a time: each starts tsx, which is slow on a small machine.
    const results: { code: number; stderr: string }[] = [];
    for (let i = 0; i < cases.length; i += 2)
      results.push(...(await Promise.all(cases.slice(i, i + 2).map(([args]) => cli(args)))));
    results.forEach((r, i) => {
      const lines = r.stderr.trim().split('\n');
      expect({ args: cases[i]?.[0], code: r.code, lines }).toEqual({
        args: cases[i]?.[0],
        code: 2,
        lines: [expect.stringMatching(cases[i]?.[1] ?? /^$/)],
      });
    });
    expect(connections).toBe(0);
  });
});
