/**
 * The exclusive lock on one GPU of the team's own server (an `ssh-host` target), so two studies or two people never
 * share it. On the host, under a lock root shared by every user (`gpuLock.dir`):
 *
 *   <dir>/.guard               every lock operation holds `flock` on it, so check-then-change is atomic; the kernel
 *                              drops it when the operation's shell dies (nothing to clean up after a lost connection)
 *   <dir>/gpu-<N>.lock/        the lock: renamed into place complete (owner record already inside)
 *     owner.json               study, phase, model, workflow id and run id, started by (worker user@host), since
 *     heartbeat -> <ws>/heartbeat   the session's workspace heartbeat, which every pod activity touches on each poll
 *
 * A holder is gone when Temporal says its run is closed, or when its heartbeat is older than `staleAfterMs`; its lock
 * is then taken over: under the guard, only if the owner record is still the one judged (its sha256), renamed away and
 * replaced. Two takers at once: the second finds a changed record and sees the winner as the holder.
 *
 * One file on purpose (a little over 350 lines): the shell script run under the guard and the TypeScript that reads
 * its answers are one protocol, and reading them side by side is how it is reviewed.
 */
import { hostname, userInfo } from 'node:os';
import { log } from '@temporalio/activity';
import type {
  AcquireGpuLockInput,
  AcquireGpuLockOutput,
  GpuLockHolder,
  GpuLockOwner,
  GpuLockRecord,
  HostGpu,
  ReleaseGpuLockInput,
  ReleaseGpuLockOutput,
  WorkflowRunState,
} from './types.js';
import { describeGpuHolder } from '../../shared/gpu-lock.js';
import { q, RemoteCommandError, runChecked, shellsOver, type PodConnector, type PodShell } from '../ssh/index.js';
import { GpuLockUnavailableError, GpuNotFoundError } from './errors.js';
import { GpuLockRecordSchema } from './schemas.js';

/** Temporal's view of a workflow run; the worker implements it with a Temporal client (src/workers/). */
export type WorkflowRunStateLookup = (run: { workflowId: string; runId: string }) => Promise<WorkflowRunState>;

export interface GpuLockActivityDeps {
  connector: PodConnector;
  workflowRunState: WorkflowRunStateLookup;
  /** Recorded as `startedBy`; default: this worker's OS user and host name. */
  lockOwnerIdentity?: string;
}

/** Bytes of an owner record read back (a larger one is refused unread past this). */
const RECORD_MAX_BYTES = 4096;
/** Bytes of GPU list read back. */
const GPU_LIST_MAX_BYTES = 16_384;
/** Rounds of look-then-change before giving up (each lost round means another session changed the lock). */
const MAX_ROUNDS = 5;

/** `<dir>/gpu-<N>.lock`. */
export function gpuLockPath(dir: string, gpuIndex: number): string {
  return `${dir.replace(/\/+$/, '')}/gpu-${gpuIndex}.lock`;
}

/**
 * Runs `body` holding `flock` on `<root>/.guard`, creating the root (world-writable: every user of the server shares
 * it) when missing. Problems the lock cannot work around are printed as `GPULOCK-ERROR <kind> <text>`.
 */
function guarded(root: string, body: string[]): string {
  return [
    `root=${q(root)}`,
    `if [ ! -d "$root" ]; then mkdir -p "$root" 2>/dev/null && chmod 0777 "$root" 2>/dev/null; fi`,
    `if [ ! -d "$root" ] || [ ! -w "$root" ]; then echo "GPULOCK-ERROR unavailable $root is not a folder this user can write"; exit 0; fi`,
    `command -v flock >/dev/null 2>&1 || { echo "GPULOCK-ERROR unavailable flock (util-linux) is not installed on the host"; exit 0; }`,
    `guard="$root/.guard"`,
    `[ -f "$guard" ] || { : >> "$guard" && chmod 0644 "$guard"; } 2>/dev/null`,
    `[ -r "$guard" ] || { echo "GPULOCK-ERROR unavailable cannot read $guard"; exit 0; }`,
    `exec 9< "$guard"`,
    `flock -w 60 9 || { echo "GPULOCK-ERROR busy the lock guard stayed held for 60 s"; exit 0; }`,
    ...body,
  ].join('\n');
}

/** Prints the host's clock, its GPU list and the lock's state (owner record base64, capped). Changes nothing. */
function inspectScript(root: string, lock: string): string {
  const b64 = `base64 | tr -d '\\n'`;
  return guarded(root, [
    `lock=${q(lock)}`,
    `echo "NOW $(date +%s%3N)"`,
    // The sandbox's stand-in for the team's server lists simulated GPUs (a fake nvidia-smi would make the harness
    // record them as the run's hardware); a real server has no such variable and is asked with nvidia-smi.
    `if [ -n "\${GPUSTUDY_SIMULATED_GPUS:-}" ]; then echo "GPUS simulated $(head -c ${GPU_LIST_MAX_BYTES} "$GPUSTUDY_SIMULATED_GPUS" 2>/dev/null | ${b64})"`,
    `elif command -v nvidia-smi >/dev/null 2>&1; then echo "GPUS nvidia-smi $(nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits 2>&1 | head -c ${GPU_LIST_MAX_BYTES} | ${b64})"`,
    `else echo "GPUS none"; fi`,
    `if [ -e "$lock" ] || [ -L "$lock" ]; then`,
    `  echo "LOCK held"`,
    `  echo "LOCKMTIME $(stat -c %Y "$lock" 2>/dev/null)"`,
    `  echo "HEARTBEAT $(stat -L -c %Y "$lock/heartbeat" 2>/dev/null)"`,
    `  echo "SHA $(sha256sum < "$lock/owner.json" 2>/dev/null | cut -c1-64)"`,
    `  echo "RECORD $(head -c ${RECORD_MAX_BYTES + 1} "$lock/owner.json" 2>/dev/null | ${b64})"`,
    `else echo "LOCK free"; fi`,
  ]);
}

/** The lock is still the one judged (gone when `sha` is null, else this owner record) or the script stops. */
function expectLock(sha: string | null): string[] {
  if (sha === null) return [`if [ -e "$lock" ] || [ -L "$lock" ]; then echo GPULOCK-CHANGED; exit 0; fi`];
  return [
    `if ! { [ -e "$lock" ] || [ -L "$lock" ]; }; then echo GPULOCK-CHANGED; exit 0; fi`,
    `if [ "$(sha256sum < "$lock/owner.json" 2>/dev/null | cut -c1-64)" != ${q(sha)} ]; then echo GPULOCK-CHANGED; exit 0; fi`,
  ];
}

/** Renames the lock away (atomic; the rest is cleanup) and removes it; a folder other users' files keep is left. */
function removeLock(trashName: string): string[] {
  return [
    `trash="$root/${trashName}"`,
    `mv "$lock" "$trash" || { echo "GPULOCK-ERROR failed cannot move $lock aside"; exit 0; }`,
    `rm -rf "$trash" 2>/dev/null; [ -e "$trash" ] && echo "GPULOCK-NOTE left $trash"`,
  ];
}

/** Creates the lock complete in a temporary folder and renames it into place; touches the session's heartbeat. */
function createLock(o: { tmpName: string; record: GpuLockRecord; ws: string }): string[] {
  return [
    `tmp="$root/${o.tmpName}"`,
    `rm -rf "$tmp"`,
    // World-writable folder: another user's session must be able to take a dead holder's lock over (and remove it).
    `{ mkdir "$tmp" && chmod 0777 "$tmp" && printf '%s\\n' ${q(JSON.stringify(o.record))} > "$tmp/owner.json" && ` +
      `chmod 0644 "$tmp/owner.json" && ln -s ${q(o.record.heartbeatPath)} "$tmp/heartbeat" && ` +
      `mkdir -p ${q(o.ws)} && touch ${q(o.record.heartbeatPath)} && mv -T "$tmp" "$lock"; } || ` +
      `{ rm -rf "$tmp"; echo "GPULOCK-ERROR failed cannot create $lock"; exit 0; }`,
  ];
}

/** What the inspect script saw. */
interface LockState {
  nowMs: number;
  gpus: { source: 'simulated' | 'nvidia-smi' | 'none'; list: HostGpu[]; raw: string };
  lock: { sha: string; holder: GpuLockHolder; lockMtimeMs: number | null } | null;
}

function fromBase64(text: string | undefined): string {
  return Buffer.from(text ?? '', 'base64').toString('utf8');
}

/** `index, name, memory.total` lines (nounits: MiB); anything else is ignored. */
function parseGpuList(text: string): HostGpu[] {
  const gpus: HostGpu[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d{1,3})\s*,\s*([^,]{1,200}?)\s*,\s*(\d+(?:\.\d+)?)?\s*(?:MiB)?\s*$/.exec(line);
    if (m?.[1] && m[2]) gpus.push({ index: Number(m[1]), name: m[2], memoryMiB: m[3] ? Number(m[3]) : null });
  }
  return gpus;
}

/** The owner record, or why it cannot be used. */
function parseRecord(b64: string | undefined): { record: GpuLockRecord | null; problem: string | null } {
  const raw = fromBase64(b64);
  if (!raw) return { record: null, problem: 'no owner record' };
  if (Buffer.byteLength(raw) > RECORD_MAX_BYTES)
    return { record: null, problem: `owner record over ${RECORD_MAX_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { record: null, problem: 'owner record is not JSON' };
  }
  const r = GpuLockRecordSchema.safeParse(json);
  if (!r.success) return { record: null, problem: `owner record not understood: ${r.error.issues[0]?.message ?? ''}` };
  return { record: r.data, problem: null };
}

function parseState(out: string): LockState {
  const fields = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^([A-Z]+) ?(.*)$/.exec(line.trim());
    if (m?.[1]) fields.set(m[1], m[2] ?? '');
  }
  const nowMs = Number(fields.get('NOW'));
  const [source = 'none', list = ''] = (fields.get('GPUS') ?? 'none').split(' ');
  if (!Number.isFinite(nowMs) || !['simulated', 'nvidia-smi', 'none'].includes(source) || !fields.has('LOCK')) {
    throw new RemoteCommandError('read the GPU lock', 0, out.slice(-500));
  }
  const gpuText = fromBase64(list);
  const gpus = { source: source as LockState['gpus']['source'], list: parseGpuList(gpuText), raw: gpuText };
  if (fields.get('LOCK') !== 'held') return { nowMs, gpus, lock: null };
  const seconds = (key: string) => {
    const v = Number(fields.get(key) || Number.NaN);
    return Number.isFinite(v) ? v * 1000 : null;
  };
  const lockMtimeMs = seconds('LOCKMTIME');
  const beatMs = seconds('HEARTBEAT') ?? lockMtimeMs;
  const { record, problem } = parseRecord(fields.get('RECORD'));
  return {
    nowMs,
    gpus,
    lock: {
      sha: fields.get('SHA') ?? '',
      lockMtimeMs,
      holder: {
        record,
        problem,
        heartbeatAgeMs: beatMs === null ? null : Math.max(0, nowMs - beatMs),
        runState: 'unknown',
      },
    },
  };
}

/** The script's verdict line: OK, CHANGED (another session changed the lock first), or a problem. */
function outcome(out: string, step: string): 'ok' | 'changed' {
  const err = /^GPULOCK-ERROR (\S+) (.*)$/m.exec(out);
  if (err) {
    if (err[1] === 'unavailable') throw new GpuLockUnavailableError(`GPU lock: ${err[2] ?? ''}`);
    throw new RemoteCommandError(step, 0, err[2] ?? out.slice(-500));
  }
  const note = /^GPULOCK-NOTE (.*)$/m.exec(out);
  if (note) log.warn('GPU lock', { note: note[1] });
  if (/^GPULOCK-CHANGED$/m.test(out)) return 'changed';
  if (/^GPULOCK-OK$/m.test(out)) return 'ok';
  throw new RemoteCommandError(step, 0, out.slice(-500));
}

const sameRun = (r: GpuLockRecord | null, o: { workflowId: string; runId: string }) =>
  r !== null && r.workflowId === o.workflowId && r.runId === o.runId;

/** A name for scratch folders under the root, unique to this run. */
const scratch = (kind: string, gpuIndex: number, runId: string) =>
  `.gpu-${gpuIndex}.${kind}-${runId.replace(/[^A-Za-z0-9-]/g, '').slice(0, 40)}-$$`;

export function createGpuLockActivities(deps: GpuLockActivityDeps) {
  const identity = deps.lockOwnerIdentity ?? `${userInfo().username}@${hostname()}`;

  const withShell = shellsOver(deps.connector);
  const exec = runChecked;

  async function inspect(sh: PodShell, root: string, lock: string): Promise<LockState> {
    const out = await exec(sh, 'read the GPU lock', inspectScript(root, lock));
    outcome(`${out}\nGPULOCK-OK`, 'read the GPU lock');
    return parseState(out);
  }

  /** The GPU `gpuIndex` as the host lists it, or a GpuNotFoundError naming the GPUs it has. */
  function chosenGpu(state: LockState, gpuIndex: number, where: string): HostGpu {
    const { source, list, raw } = state.gpus;
    const found = list.find((g) => g.index === gpuIndex);
    if (found) return found;
    if (source === 'none') {
      throw new GpuNotFoundError(
        `cannot tell whether GPU ${gpuIndex} exists on ${where}: nvidia-smi is not on the PATH of its SSH sessions`,
      );
    }
    const has = list.length
      ? `it has ${list.length} GPU(s): ${list.map((g) => `${g.index} ${g.name}${g.memoryMiB ? ` (${g.memoryMiB} MiB)` : ''}`).join(', ')}${source === 'simulated' ? ' (simulated by the sandbox)' : ''}`
      : `it lists no GPU (nvidia-smi said: ${raw.trim().split('\n')[0]?.slice(0, 200) ?? ''})`;
    throw new GpuNotFoundError(
      `GPU ${gpuIndex} does not exist on ${where}: ${has}. Set the phase's target.gpuIndex to one of them.`,
    );
  }

  /** Why the holder counts as gone, or null while it may still be working. */
  async function goneBecause(holder: GpuLockHolder, staleAfterMs: number): Promise<string | null> {
    if (holder.heartbeatAgeMs !== null && holder.heartbeatAgeMs > staleAfterMs) {
      return `its heartbeat is ${Math.round(holder.heartbeatAgeMs / 1000)} s old (stale after ${Math.round(staleAfterMs / 1000)} s)`;
    }
    if (!holder.record) return null;
    holder.runState = await deps
      .workflowRunState({ workflowId: holder.record.workflowId, runId: holder.record.runId })
      .catch(() => 'unknown' as const);
    return holder.runState === 'closed' ? `its workflow run ${holder.record.runId} is closed` : null;
  }

  return {
    /**
     * Takes the lock on `gpuIndex` of the team's server for this session, or says who holds it (`acquired: false`;
     * the workflow waits and asks again). Idempotent for the same workflow run; takes over the lock of a holder that
     * is gone (run closed, heartbeat stale), logging the old owner. A GPU the host does not have fails for good.
     */
    async acquireGpuLock(input: AcquireGpuLockInput): Promise<AcquireGpuLockOutput> {
      const root = input.lock.dir;
      const lockPath = gpuLockPath(root, input.gpuIndex);
      const ws = input.endpoint.workspaceDir;
      const where = `${input.endpoint.ssh.host}:${input.endpoint.ssh.port}`;
      return withShell(input.endpoint, async (sh) => {
        for (let round = 1; round <= MAX_ROUNDS; round++) {
          const state = await inspect(sh, root, lockPath);
          const gpu = chosenGpu(state, input.gpuIndex, where);
          const record: GpuLockRecord = {
            schemaVersion: 1,
            ...pickOwner(input.owner),
            gpuIndex: input.gpuIndex,
            startedBy: identity,
            acquiredAt: new Date(state.nowMs).toISOString(),
            heartbeatPath: `${ws}/heartbeat`,
          };
          const apply = (body: string[]) =>
            exec(sh, 'take the GPU lock', guarded(root, [`lock=${q(lockPath)}`, ...body, 'echo GPULOCK-OK'])).then(
              (o) => outcome(o, 'take the GPU lock'),
            );
          const tmpName = scratch('new', input.gpuIndex, input.owner.runId);
          if (!state.lock) {
            if ((await apply([...expectLock(null), ...createLock({ tmpName, record, ws })])) === 'changed') continue;
            log.info('GPU lock taken', { lockPath, gpu: gpu.index });
            return { acquired: true, lockPath, gpu, how: 'created', takenOver: null };
          }
          const { holder, sha } = state.lock;
          if (sameRun(holder.record, input.owner)) {
            // This run holds it already (a retried activity, or a repeated acquire): keep it, refresh the heartbeat.
            const touch = `touch ${q(holder.record?.heartbeatPath ?? `${ws}/heartbeat`)} 2>/dev/null; true`;
            if ((await apply([...expectLock(sha), touch])) === 'changed') continue;
            return { acquired: true, lockPath, gpu, how: 'already-held', takenOver: null };
          }
          const reason = await goneBecause(holder, input.lock.staleAfterMs);
          if (!reason) return { acquired: false, lockPath, gpu, holder };
          const trash = scratch('taken', input.gpuIndex, input.owner.runId);
          if (
            (await apply([...expectLock(sha), ...removeLock(trash), ...createLock({ tmpName, record, ws })])) ===
            'changed'
          )
            continue;
          log.warn('took over the lock of a GPU whose holder is gone', {
            lockPath,
            reason,
            previousOwner: describeGpuHolder(holder),
            previousRecord: holder.record,
          });
          return { acquired: true, lockPath, gpu, how: 'taken-over', takenOver: { holder, reason } };
        }
        throw new RemoteCommandError(
          'take the GPU lock',
          null,
          `the lock ${lockPath} kept changing under ${MAX_ROUNDS} tries`,
        );
      });
    },

    /** Releases the lock if this workflow run holds it; a lock someone else holds now is left alone (and reported). */
    async releaseGpuLock(input: ReleaseGpuLockInput): Promise<ReleaseGpuLockOutput> {
      const root = input.lock.dir;
      const lockPath = gpuLockPath(root, input.gpuIndex);
      return withShell(input.endpoint, async (sh) => {
        for (let round = 1; round <= MAX_ROUNDS; round++) {
          const state = await inspect(sh, root, lockPath);
          if (!state.lock) return { outcome: 'not-held', holder: null };
          const { holder, sha } = state.lock;
          if (!sameRun(holder.record, input.owner)) {
            log.warn("the GPU lock is not this run's (taken over while it ran?); left as it is", {
              lockPath,
              holder: describeGpuHolder(holder),
            });
            return { outcome: 'held-by-other', holder };
          }
          const body = [
            `lock=${q(lockPath)}`,
            ...expectLock(sha),
            ...removeLock(scratch('released', input.gpuIndex, input.owner.runId)),
            'echo GPULOCK-OK',
          ];
          if (
            outcome(await exec(sh, 'release the GPU lock', guarded(root, body)), 'release the GPU lock') === 'changed'
          )
            continue;
          log.info('GPU lock released', { lockPath });
          return { outcome: 'released', holder: null };
        }
        throw new RemoteCommandError('release the GPU lock', null, `the lock ${lockPath} kept changing`);
      });
    },
  };
}

/** Only the owner fields, whatever else the input object carries. */
function pickOwner(o: GpuLockOwner): GpuLockOwner {
  return { study: o.study, phase: o.phase, model: o.model, workflowId: o.workflowId, runId: o.runId };
}
