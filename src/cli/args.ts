// Argument checks of the CLI: every bad invocation becomes a UsageError (one line, exit 2) before anything is
// contacted. Pure functions over argv and the environment, so tests call them without a process or a server.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Token = NonNullable<ReturnType<typeof parseArgs<ParseArgsConfig & { tokens: true }>>['tokens']>[number];
import type { GateDecision } from '../activities/analysis/index.js';
import type { BudgetRaise } from '../workflows/types.js';
import { BudgetRaiseSchema, UsdAmountSchema } from '../workflows/messages.js';

/** A bad invocation: main prints `error: <message>` and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit codes of the CLI (also in its usage text). */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** How a person runs each command, for the hint in an error. */
const npmScript = (command: string) => `npm run ${command === 'start' ? 'start-workflow' : command} -- --help`;

/** node:util's parse errors as one line that names the flag (its own messages span lines or say "Option"). */
function parseErrorLine(command: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? '';
  const hint = `see ${npmScript(command)}`;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${flag} for ${command}; ${hint}`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
    return `${command} takes no arguments (got ${/'([^']*)'/.exec(message)?.[1] ?? '?'}); ${hint}`;
  if (message.includes('argument is ambiguous'))
    return `${flag} needs a value (a value that starts with "-" is written ${flag}=<value>)`;
  if (message.includes('argument missing')) return `${flag} needs a value; ${hint}`;
  if (message.includes('does not take an argument')) return `${flag} takes no value`;
  return `${message.split('\n')[0] ?? message}; ${hint}`;
}

/**
 * node:util parseArgs (strict) with one-line errors, a limit on positionals, no empty values, and a refusal of a
 * repeated value flag (parseArgs lets the last `--study` win silently).
 */
export function parseCommandArgs<T extends ParseArgsConfig & { args: string[] }>(
  command: string,
  config: T,
  maxPositionals = 0,
): ReturnType<typeof parseArgs<T>> {
  let tokens: Token[];
  try {
    tokens =
      parseArgs({
        args: config.args,
        options: config.options ?? {},
        allowPositionals: maxPositionals > 0,
        strict: true,
        tokens: true,
      }).tokens ?? [];
  } catch (err) {
    throw new UsageError(parseErrorLine(command, err));
  }
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const option = config.options?.[t.name];
    if (option?.type !== 'string' || option.multiple) continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given twice; give it once`);
    if (!t.value?.trim()) throw new UsageError(`--${t.name} needs a value`);
    seen.add(t.name);
  }
  const positionals = tokens.flatMap((t) => (t.kind === 'positional' ? [t.value] : []));
  if (positionals.length > maxPositionals) {
    throw new UsageError(
      `${command} takes ${maxPositionals === 1 ? 'one argument' : `${maxPositionals} arguments`}; unexpected ${positionals.slice(maxPositionals).join(' ')}`,
    );
  }
  return parseArgs(config);
}

/**
 * A USD amount from a flag: plain decimal digits (Number() would also read '', '0x10' and 'Infinity'), finite and
 * above zero (1e400 is Infinity).
 */
export function usdAmount(flag: string, raw: string): number {
  const n = /^(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(raw) ? Number(raw) : NaN;
  if (!UsdAmountSchema.safeParse(n).success)
    throw new UsageError(`${flag} must be an amount in USD above zero, e.g. 250 (got ${JSON.stringify(raw)})`);
  return n;
}

/** A number of minutes from a flag: plain decimal digits, above zero unless `zeroOk`. */
function minutes(flag: string, raw: string, zeroOk: boolean): number {
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!(zeroOk ? n >= 0 : n > 0))
    throw new UsageError(
      `${flag} must be a number of minutes${zeroOk ? '' : ' above zero'} (got ${JSON.stringify(raw)})`,
    );
  return n;
}

export interface StartArgs {
  phaseId: string;
  studyPath: string;
  sandbox: boolean;
  detach: boolean;
  /** Print the plan and start nothing. */
  dryRun: boolean;
  /** Start without asking (the plan is still printed and its checks still stop a bad start). */
  yes: boolean;
  json: boolean;
  /** Plan with no network: the study's metadata file only. */
  offline: boolean;
  verbose: boolean;
}

export function parseStartArgs(args: string[]): StartArgs {
  const { values, positionals } = parseCommandArgs(
    'start',
    {
      args,
      allowPositionals: true,
      options: {
        study: { type: 'string', default: 'studies/rq1.yaml' },
        sandbox: { type: 'boolean', default: false },
        detach: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        yes: { type: 'boolean', short: 'y', default: false },
        json: { type: 'boolean', default: false },
        offline: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
      },
    },
    1,
  );
  const phaseId = positionals[0];
  if (!phaseId) throw new UsageError('which phase? e.g. `npm run start-workflow -- phase2a --sandbox`');
  if (values.json && !values['dry-run']) throw new UsageError('--json prints the plan only: use it with --dry-run');
  return {
    phaseId,
    studyPath: values.study,
    sandbox: values.sandbox,
    detach: values.detach,
    dryRun: values['dry-run'],
    yes: values.yes,
    json: values.json,
    offline: values.offline,
    verbose: values.verbose,
  };
}

export interface PlanArgs {
  phaseId: string;
  studyPath: string;
  sandbox: boolean;
  json: boolean;
  offline: boolean;
  verbose: boolean;
  /** Write the live Hub and catalog figures to the study's metadata file (for planning offline later). */
  saveMetadata: boolean;
}

export function parsePlanArgs(args: string[]): PlanArgs {
  const { values, positionals } = parseCommandArgs(
    'plan',
    {
      args,
      allowPositionals: true,
      options: {
        study: { type: 'string', default: 'studies/rq1.yaml' },
        sandbox: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        offline: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        'save-metadata': { type: 'boolean', default: false },
      },
    },
    1,
  );
  const phaseId = positionals[0];
  if (!phaseId) throw new UsageError('which phase? e.g. `npm run plan -- phase2a`');
  if (values.offline && values['save-metadata'])
    throw new UsageError('--save-metadata writes what the live Hub and catalog say: it cannot be --offline');
  return {
    phaseId,
    studyPath: values.study,
    sandbox: values.sandbox,
    json: values.json,
    offline: values.offline,
    verbose: values.verbose,
    saveMetadata: values['save-metadata'],
  };
}

/**
 * A simulated study (fake vLLM answers) runs in the sandbox only, and the sandbox runs simulated studies only: its
 * results are marked simulated and must never land beside real ones, nor real ones beside them.
 */
export function checkSandboxMatch(opts: { file: string; simulated: boolean; sandbox: boolean }): void {
  if (opts.simulated && !opts.sandbox)
    throw new UsageError(`${opts.file} is a simulated study (simulated: true): run it with --sandbox`);
  if (!opts.simulated && opts.sandbox)
    throw new UsageError(`--sandbox runs simulated studies only, and ${opts.file} does not set simulated: true`);
}

export type GateArgs = { study: string; sandbox: boolean } & (
  | { action: 'status'; json: boolean }
  | { action: GateDecision['decision']; by: string; reason?: string }
  | { action: 'budget'; raise: BudgetRaise }
);

const GATE_ACTIONS = ['status', 'approve', 'skip', 'stop', 'budget'] as const;

/** `gate` arguments, all checked here: `by` and the amounts included, so a bad call never reaches Temporal. */
export function parseGateArgs(args: string[], env: NodeJS.ProcessEnv): GateArgs {
  const { values, positionals } = parseCommandArgs(
    'gate',
    {
      args,
      allowPositionals: true,
      options: {
        study: { type: 'string', default: 'rq1' },
        sandbox: { type: 'boolean', default: false },
        by: { type: 'string' },
        reason: { type: 'string' },
        note: { type: 'string' },
        json: { type: 'boolean', default: false },
        'phase-usd': { type: 'string' },
        'study-usd': { type: 'string' },
      },
    },
    1,
  );
  const action = GATE_ACTIONS.find((a) => a === positionals[0]);
  if (!action) throw new UsageError('gate takes status, approve, skip, stop or budget');
  const common = { study: values.study, sandbox: values.sandbox };
  const amounts = (['phase-usd', 'study-usd'] as const).filter((f) => values[f] !== undefined);
  if (action !== 'budget' && amounts.length) throw new UsageError(`--${amounts[0]} goes with gate budget only`);
  if (action !== 'status' && values.json) throw new UsageError('--json goes with gate status only');
  if (action === 'status') return { ...common, action, json: values.json };

  const by = (values.by ?? env.USER ?? '').trim();
  if (!by) throw new UsageError(`gate ${action} needs --by <your name> (USER is not set)`);
  if (action === 'budget') {
    const phase = values['phase-usd'];
    const study = values['study-usd'];
    if (phase === undefined && study === undefined)
      throw new UsageError('gate budget needs --phase-usd N and/or --study-usd N');
    const raise: BudgetRaise = {
      by,
      ...(phase !== undefined ? { phaseUsd: usdAmount('--phase-usd', phase) } : {}),
      ...(study !== undefined ? { studyUsd: usdAmount('--study-usd', study) } : {}),
    };
    // The workflow parses the signal with the same schema; refuse here what it would ignore there.
    const checked = BudgetRaiseSchema.safeParse(raise);
    if (!checked.success) throw new UsageError(`invalid budget raise: ${checked.error.issues[0]?.message ?? ''}`);
    return { ...common, action, raise: checked.data };
  }
  if (values.reason !== undefined && values.note !== undefined)
    throw new UsageError('give --reason or --note (the same thing), not both');
  const reason = values.reason ?? values.note;
  return { ...common, action, by, ...(reason ? { reason } : {}) };
}

/** `status` and `report`: which study, in or out of the sandbox. */
export function parseStudyArgs(command: string, args: string[]): { study: string; sandbox: boolean } {
  const { values } = parseCommandArgs(command, {
    args,
    options: { study: { type: 'string', default: 'rq1' }, sandbox: { type: 'boolean', default: false } },
  });
  return values;
}

export function parseImportArgs(args: string[]) {
  const { values, positionals } = parseCommandArgs(
    'import',
    {
      args,
      allowPositionals: true,
      options: {
        study: { type: 'string', default: 'rq1' },
        'study-file': { type: 'string' },
        phase: { type: 'string' },
        model: { type: 'string' },
        prompt: { type: 'string' },
        'id-column': { type: 'string' },
        'line-column': { type: 'string' },
        'label-column': { type: 'string' },
        'prediction-column': { type: 'string' },
      },
    },
    Number.POSITIVE_INFINITY,
  );
  if (!positionals.length)
    throw new UsageError('import needs a folder or files (predictions, emissions.csv, metadata)');
  if (!values.phase) throw new UsageError('import needs --phase (e.g. phase1)');
  return { values: { ...values, phase: values.phase }, positionals };
}

export interface ReaperArgs {
  dryRun: boolean;
  graceMinutes: number;
  installSchedule: boolean;
  everyMinutes: number;
  sandbox: boolean;
}

export function parseReaperArgs(args: string[]): ReaperArgs {
  const { values } = parseCommandArgs('reaper', {
    args,
    options: {
      'dry-run': { type: 'boolean', default: false },
      'grace-minutes': { type: 'string', default: '15' },
      'install-schedule': { type: 'boolean', default: false },
      'every-minutes': { type: 'string', default: '10' },
      sandbox: { type: 'boolean', default: false },
    },
  });
  return {
    dryRun: values['dry-run'],
    graceMinutes: minutes('--grace-minutes', values['grace-minutes'], true),
    installSchedule: values['install-schedule'],
    everyMinutes: minutes('--every-minutes', values['every-minutes'], false),
    sandbox: values.sandbox,
  };
}

/** `sandbox up|down`. */
export function parseSandboxArgs(args: string[]): 'up' | 'down' {
  const [action, ...extra] = args;
  if ((action !== 'up' && action !== 'down') || extra.length) throw new UsageError('sandbox takes up or down');
  return action;
}

export function parseListArgs(args: string[]): { sandbox: boolean; json: boolean; all: boolean; limit: number } {
  const { values } = parseCommandArgs('list', {
    args,
    options: {
      sandbox: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      limit: { type: 'string', default: '50' },
    },
  });
  const limit = Number(values.limit);
  if (!/^\d+$/.test(values.limit) || limit < 1)
    throw new UsageError(`--limit must be a whole number >= 1, got ${values.limit}`);
  return { sandbox: values.sandbox, json: values.json, all: values.all, limit };
}
