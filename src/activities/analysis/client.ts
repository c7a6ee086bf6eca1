// Runs the Python analysis package (`python -m analysis <command>`, docs/analysis.md) as a child process: JSON in on
// stdin (or argv), JSON out on stdout, parsed with zod where it enters.
import { spawn } from 'node:child_process';
import type { z } from 'zod';
import { AnalysisFailedError, AnalysisInputError } from './errors.js';

export interface AnalysisClientOptions {
  /** Python with analysis/requirements.txt installed. */
  python: string;
  /** Repository root: the working directory, where the `analysis` package lives. */
  projectRoot: string;
  /** A run past this is killed (the statistics take seconds; a hang must not hold the activity for ever). */
  timeoutMs?: number;
}

/** What the activities and the CLI depend on. */
export interface AnalysisApi {
  run<T>(args: { command: string; argv?: string[]; input?: unknown; schema: z.ZodType<T> }): Promise<T>;
}

const TAIL_CHARS = 2_000;

export class AnalysisClient implements AnalysisApi {
  readonly #options: AnalysisClientOptions;

  constructor(options: AnalysisClientOptions) {
    this.#options = options;
  }

  async run<T>(args: { command: string; argv?: string[]; input?: unknown; schema: z.ZodType<T> }): Promise<T> {
    const { stdout, stderr, code, signal } = await this.#spawn(
      ['-m', 'analysis', args.command, ...(args.argv ?? [])],
      args.input === undefined ? '' : JSON.stringify(args.input),
    );
    const tail = stderr.trim().slice(-TAIL_CHARS);
    // Exit 2 is the analysis saying its input is unusable; anything else non-zero is a crash.
    if (code === 2) throw new AnalysisInputError(tail || `analysis ${args.command}: input refused`);
    if (code !== 0) throw new AnalysisFailedError(`analysis ${args.command} exited ${code ?? signal}`, tail);
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch {
      throw new AnalysisFailedError(`analysis ${args.command} printed no JSON`, stdout.slice(-TAIL_CHARS));
    }
    const result = args.schema.safeParse(parsed);
    if (!result.success)
      throw new AnalysisFailedError(`analysis ${args.command} output breaks its contract`, result.error.message);
    return result.data;
  }

  #spawn(
    argv: string[],
    stdin: string,
  ): Promise<{ stdout: string; stderr: string; code: number | null; signal: string | null }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.#options.python, argv, {
        cwd: this.#options.projectRoot,
        // Figures without a display; no user site-packages leaking into pinned results.
        env: { ...process.env, MPLBACKEND: 'Agg', PYTHONNOUSERSITE: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: this.#options.timeoutMs ?? 10 * 60_000,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) =>
        reject(new AnalysisFailedError(`cannot run ${this.#options.python} (npm run setup builds it)`, e.message)),
      );
      child.on('close', (code, signal) =>
        resolve({
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          code,
          signal,
        }),
      );
      child.stdin.end(stdin);
    });
  }
}
