// Runs the pod harness's own input checks on the worker (`python -m harness.check`, pod/harness/check.py) and its
// preflight (`python -m harness.preflight`: dataset facts and prompt token counts with the model's tokenizer): JSON in
// on stdin, JSON out on stdout, parsed with zod where it enters. The check is standard-library Python; the preflight
// needs the worker venv's tokenizers and jinja2.
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { HarnessCheckFailedError } from './errors.js';
import type { z } from 'zod';
import {
  HarnessCheckOutputSchema,
  HarnessPreflightOutputSchema,
  type HarnessCheckInput,
  type HarnessCheckOutput,
  type HarnessPreflightInput,
  type HarnessPreflightOutput,
} from './schemas.js';

export interface HarnessCheckClientOptions {
  /** Any Python 3.10+ (the worker uses its analysis venv). */
  python: string;
  /** The `harness` package folder (pod/harness). */
  harnessDir: string;
  /** Reading a dataset takes well under a second; a hang must not hold the activity. */
  timeoutMs?: number;
}

/** What the activities depend on. */
export interface HarnessCheckApi {
  check(input: HarnessCheckInput): Promise<HarnessCheckOutput>;
  preflight(input: HarnessPreflightInput): Promise<HarnessPreflightOutput>;
}

const TAIL_CHARS = 2_000;

export class HarnessCheckClient implements HarnessCheckApi {
  readonly #options: HarnessCheckClientOptions;

  constructor(options: HarnessCheckClientOptions) {
    this.#options = options;
  }

  check(input: HarnessCheckInput): Promise<HarnessCheckOutput> {
    return this.#run('harness.check', HarnessCheckOutputSchema, input);
  }

  preflight(input: HarnessPreflightInput): Promise<HarnessPreflightOutput> {
    return this.#run('harness.preflight', HarnessPreflightOutputSchema, input);
  }

  #run<S extends z.ZodType>(module: string, schema: S, input: unknown): Promise<z.output<S>> {
    const podDir = dirname(this.#options.harnessDir);
    return new Promise((resolve, reject) => {
      const child = spawn(this.#options.python, ['-m', module], {
        cwd: podDir,
        // The harness from this checkout, no user site-packages, no __pycache__ in the folder shipped to pods.
        env: { ...process.env, PYTHONPATH: podDir, PYTHONNOUSERSITE: '1', PYTHONDONTWRITEBYTECODE: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: this.#options.timeoutMs ?? 2 * 60_000,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => reject(new HarnessCheckFailedError(`cannot run ${this.#options.python}`, e.message)));
      child.on('close', (code, signal) => {
        const stdout = Buffer.concat(out).toString('utf8');
        const tail = Buffer.concat(err).toString('utf8').trim().slice(-TAIL_CHARS);
        if (code !== 0) return reject(new HarnessCheckFailedError(`${module} exited ${code ?? signal}`, tail));
        let parsed: unknown;
        try {
          parsed = JSON.parse(stdout);
        } catch {
          return reject(new HarnessCheckFailedError(`${module} printed no JSON`, stdout.slice(-TAIL_CHARS)));
        }
        const result = schema.safeParse(parsed);
        if (!result.success)
          return reject(new HarnessCheckFailedError(`${module} output breaks its contract`, result.error.message));
        resolve(result.data);
      });
      child.stdin.end(JSON.stringify(input));
    });
  }
}
