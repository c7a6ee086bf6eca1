// A scripted pod for unit tests of the pod-side activities: a test lists the commands (and SFTP operations) the
// activity must send and what the pod answers. Anything off the script fails at once, naming the call and what was
// expected; verify() reports expected calls that never came. The sshd-backed tests stay the integration layer.
import { writeFileSync } from 'node:fs';
import type { ExecResult, PodConnector, PodShell, SshTarget } from '../../src/activities/ssh/index.js';
import { SshError } from '../../src/activities/ssh/index.js';

export type FakeOp = 'exec' | 'writeFile' | 'putFile' | 'getFile' | 'lstat';

type Stat = Awaited<ReturnType<PodShell['lstat']>>;

/** One call the activity made: the command for exec, the remote path for the SFTP operations. */
export interface FakeCall {
  op: FakeOp;
  target: string;
  /** writeFile: what was written. */
  content?: string | Buffer;
  /** putFile / getFile: the local side. */
  localPath?: string;
}

/** What the pod answers; a plain string is exec's stdout (exit code 0). */
export type FakeReply =
  | string
  | {
      stdout?: string;
      stderr?: string;
      /** Default 0. */
      code?: number | null;
      /** getFile: the file's content, written to the local path. */
      content?: string | Buffer;
      /** lstat: what the path is (default a file of 0 bytes). */
      stat?: Stat;
      /** Thrown instead of answering (an SshError of kind `lost` makes the reconnecting shell reconnect). */
      error?: Error;
    };

export interface Expectation {
  /** Default `exec`. */
  op?: FakeOp;
  /** exec: the command; SFTP: the remote path. A string must occur in it, a regex must match it. */
  match: string | RegExp;
  /** Named in failure messages instead of the matcher. */
  label?: string;
  /** The answer, or a function of the call and of how many times this expectation matched before (from 0). */
  reply?: FakeReply | ((call: FakeCall, n: number) => FakeReply);
  /** How often it comes: exactly n (default 1), or between min and max (max default: any number). */
  times?: number | { min: number; max?: number };
}

/** An exec expectation. */
export function cmd(
  match: string | RegExp,
  reply?: Expectation['reply'],
  opts: Pick<Expectation, 'label' | 'times'> = {},
): Expectation {
  return { op: 'exec', match, ...(reply !== undefined ? { reply } : {}), ...opts };
}

/** An SFTP expectation on a remote path. */
export function sftp(
  op: Exclude<FakeOp, 'exec'>,
  match: string | RegExp,
  reply?: Expectation['reply'],
  opts: Pick<Expectation, 'label' | 'times'> = {},
): Expectation {
  return { op, match, ...(reply !== undefined ? { reply } : {}), ...opts };
}

/** A matcher for a command that begins with `text` (taken literally). */
export function startsWith(text: string): RegExp {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
}

interface Step {
  exp: Expectation;
  min: number;
  max: number;
  used: number;
}

const short = (s: string, n = 400) => (s.length > n ? `${s.slice(0, n)}...` : s);

/**
 * A PodConnector whose every connection plays one script (a reconnect carries on where the dropped connection
 * stopped). `ordered` (default): calls must come in the script's order; a step whose count is satisfied may be
 * passed over, never returned to. Unordered: each call takes the first expectation that matches and has uses left
 * (expectations with the same matcher are used up in turn), for loops whose round count depends on the clock.
 */
export class FakePodConnector implements PodConnector {
  /** Every call, in order, off-script ones included. */
  readonly calls: FakeCall[] = [];
  /** What writeFile wrote, by remote path. */
  readonly written = new Map<string, string | Buffer>();
  readonly #steps: Step[];
  readonly #ordered: boolean;
  readonly #unexpected: string[] = [];
  readonly #shells: FakeShell[] = [];
  #cursor = 0;

  constructor(opts: { script: Expectation[]; ordered?: boolean }) {
    this.#ordered = opts.ordered ?? true;
    this.#steps = opts.script.map((exp) => {
      const t = exp.times ?? 1;
      const [min, max] = typeof t === 'number' ? [t, t] : [t.min, t.max ?? Infinity];
      return { exp, min, max, used: 0 };
    });
  }

  /** How many connections the activity opened (1 + reconnects). */
  get connections(): number {
    return this.#shells.length;
  }

  connect(target: SshTarget): Promise<PodShell> {
    const sh = new FakeShell(this, target.hostKeySha256 ?? 'SHA256:fake-pod');
    this.#shells.push(sh);
    return Promise.resolve(sh);
  }

  /** Throws when a call was off the script, an expected call never came, or a connection was left open. */
  verify(): void {
    const problems: string[] = [];
    if (this.#unexpected.length) problems.push(`unexpected calls:\n${this.#unexpected.join('\n')}`);
    const missing = this.#steps.filter((s) => s.used < s.min);
    if (missing.length) problems.push(`expected but never came:\n${missing.map((s) => this.#describe(s)).join('\n')}`);
    const open = this.#shells.filter((s) => s.isOpen()).length;
    if (open) problems.push(`${open} connection(s) left open`);
    if (problems.length) throw new Error(`fake pod: script not followed\n${problems.join('\n')}`);
  }

  /** Answers one call from the script, or records it as unexpected and throws. */
  answer(call: FakeCall): Exclude<FakeReply, string> {
    this.calls.push(call);
    const step = this.#take(call);
    if (!step) {
      const expected = this.#candidates().map((s) => this.#describe(s));
      const msg =
        `  #${this.calls.length} ${call.op} ${short(call.target)}\n    expected ` +
        (expected.length ? `one of:\n${expected.map((e) => `    ${e}`).join('\n')}` : 'nothing more');
      this.#unexpected.push(msg);
      throw new Error(`fake pod: unexpected call\n${msg}`);
    }
    const n = step.used++;
    const r = typeof step.exp.reply === 'function' ? step.exp.reply(call, n) : step.exp.reply;
    return typeof r === 'string' ? { stdout: r } : (r ?? {});
  }

  #matches(s: Step, call: FakeCall): boolean {
    const { op = 'exec', match } = s.exp;
    return op === call.op && (typeof match === 'string' ? call.target.includes(match) : match.test(call.target));
  }

  #take(call: FakeCall): Step | undefined {
    if (!this.#ordered) return this.#steps.find((s) => s.used < s.max && this.#matches(s, call));
    for (let i = this.#cursor; i < this.#steps.length; i++) {
      const s = this.#steps[i];
      if (!s) break;
      if (s.used < s.max && this.#matches(s, call)) {
        this.#cursor = i;
        return s;
      }
      if (s.used < s.min) break; // a required step blocks everything after it
    }
    return undefined;
  }

  /** What could have matched the next call. */
  #candidates(): Step[] {
    if (!this.#ordered) return this.#steps.filter((s) => s.used < s.max);
    const out: Step[] = [];
    for (const s of this.#steps.slice(this.#cursor)) {
      if (s.used < s.max) out.push(s);
      if (s.used < s.min) break;
    }
    return out;
  }

  #describe(s: Step): string {
    const what = s.exp.label ?? String(s.exp.match);
    const count = s.min === s.max ? `${s.min}` : `${s.min}..${s.max === Infinity ? 'n' : s.max}`;
    return `  - ${s.exp.op ?? 'exec'} ${short(what, 200)} (came ${s.used} of ${count})`;
  }
}

class FakeShell implements PodShell {
  #open = true;

  constructor(
    readonly pod: FakePodConnector,
    readonly hostKeySha256: string,
  ) {}

  #call(call: FakeCall): Exclude<FakeReply, string> {
    // As ssh2 after the connection went away: the reconnecting shell treats it as a drop.
    if (!this.#open) throw new SshError(`${call.op} on a closed fake connection`, 'fake-pod', 'lost');
    const r = this.pod.answer(call);
    if (r.error) throw r.error;
    return r;
  }

  exec(command: string): Promise<ExecResult> {
    return this.#settle(() => {
      const r = this.#call({ op: 'exec', target: command });
      return { code: r.code === undefined ? 0 : r.code, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    });
  }

  writeFile(remotePath: string, content: string | Buffer): Promise<void> {
    return this.#settle(() => {
      this.#call({ op: 'writeFile', target: remotePath, content });
      this.pod.written.set(remotePath, content);
    });
  }

  putFile(localPath: string, remotePath: string): Promise<void> {
    return this.#settle(() => void this.#call({ op: 'putFile', target: remotePath, localPath }));
  }

  getFile(remotePath: string, localPath: string): Promise<void> {
    return this.#settle(() =>
      writeFileSync(localPath, this.#call({ op: 'getFile', target: remotePath, localPath }).content ?? ''),
    );
  }

  lstat(remotePath: string): Promise<Stat> {
    return this.#settle(() => this.#call({ op: 'lstat', target: remotePath }).stat ?? { kind: 'file', bytes: 0 });
  }

  /** The call's answer as a promise (a thrown error becomes a rejection, as a real shell's would). */
  #settle<T>(fn: () => T): Promise<T> {
    return new Promise((resolve) => resolve(fn()));
  }

  isOpen(): boolean {
    return this.#open;
  }

  close(): void {
    this.#open = false;
  }
}
