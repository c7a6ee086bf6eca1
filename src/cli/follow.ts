import { setTimeout as delay } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import * as cost from '../shared/cost.js';
import { describeGpuHolder } from '../shared/gpu-lock.js';
import type { InferenceHeartbeat } from '../activities/harness/index.js';
import type { SessionTimeEstimate } from '../activities/plan/index.js';
import type { PhaseProgress, PodSessionProgress, StudyProgress } from '../workflows/types.js';
import { phaseProgressQuery, sessionProgressQuery, studyProgressQuery } from '../workflows/messages.js';

/** Outcome of following a study: where it stopped and whether that is a success. */
export type FollowOutcome = 'at-gate' | 'waiting-for-budget' | 'done' | 'stopped' | 'failed' | 'detached';

export interface SessionView {
  workflowId: string;
  progress: PodSessionProgress | null;
  inference: InferenceHeartbeat | null;
  activity: string | null;
}

/** Pod cost so far: cost per hour x time since create (to termination once terminated). */
export function podCostUsd(p: PodSessionProgress, nowMs: number): number {
  if (!p.podCreatedAt) return 0;
  const endedAt = p.podTerminatedAt ?? new Date(nowMs).toISOString();
  return cost.podCostUsd({ costPerHr: p.costPerHr, createdAt: p.podCreatedAt, endedAt });
}

/** Spend of the running phase and the study against their budgets. */
export function formatSpend(study: StudyProgress, phase: PhaseProgress | null, sessionsUsd: number): string {
  const money = (n: number) => `$${n.toFixed(4)}`;
  const limit = (n: number | null) => (n === null ? 'no budget' : `budget $${n.toFixed(2)}`);
  if (!phase) return `  study spent ${money(study.spentUsd)}`;
  const phaseLive = Math.max(sessionsUsd, phase.spentUsd);
  // A completed phase is already part of the study's spend.
  const studyTotal = study.completedPhases.includes(phase.phaseId) ? study.spentUsd : study.spentUsd + phaseLive;
  return `  spend: phase ${money(phaseLive)} (${limit(phase.budget.phaseUsd)}), study ${money(studyTotal)} (${limit(phase.budget.studyUsd)})`;
}

/**
 * What is left of one session, by the plan's estimate (src/plan/estimate.ts): the parts not reached yet in full,
 * the running prompt by its share of samples still to do. Null when the session has ended or has no estimate.
 */
export function sessionRemainingMs(
  estimate: SessionTimeEstimate | undefined,
  p: PodSessionProgress | null,
  inference: InferenceHeartbeat | null,
): number | null {
  if (!estimate) return null;
  const prompts = estimate.perPromptMs.map((x) => x.ms);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  switch (p?.stage ?? 'queued') {
    case 'done':
    case 'failed':
    case 'terminating':
      return 0;
    case 'transferring': // the run `runsDone` is coming home; the prompts after it are ahead
      return sum(prompts.slice((p?.runsDone ?? 0) + 1));
    case 'downloading':
      return estimate.downloadMs + estimate.loadMs + sum(prompts);
    case 'starting-vllm':
      return estimate.loadMs + sum(prompts.slice(p?.runsDone ?? 0));
    case 'inference': {
      const i = p?.runsDone ?? 0;
      const share = inference && inference.total > 0 ? 1 - Math.min(1, inference.done / inference.total) : 1;
      return (prompts[i] ?? 0) * share + sum(prompts.slice(i + 1));
    }
    default:
      // Not yet on a pod (queued, reserving, waiting for one or for the GPU): the whole session is ahead.
      return estimate.totalMs;
  }
}

const hm = (ms: number) => {
  const min = Math.max(1, Math.round(ms / 60_000));
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, '0')} min`;
};

/**
 * The phase's time left: every session's remaining estimate, spread over the phase's concurrent sessions (the
 * longest one bounds it from below). Null before the preflight gave estimates.
 */
export function formatEta(phase: PhaseProgress | null, sessions: SessionView[], nowMs: number): string | null {
  const pre = phase?.preflight;
  if (!phase || !pre?.estimates.length) return null;
  const byModel = new Map(pre.estimates.map((e) => [e.repoId, e]));
  const left = phase.sessions.map((id, i) => {
    const v = sessions.find((s) => s.workflowId === id);
    const estimate = (v?.progress ? byModel.get(v.progress.model) : undefined) ?? pre.estimates[i];
    return sessionRemainingMs(estimate, v?.progress ?? null, v?.inference ?? null) ?? 0;
  });
  const open = left.filter((ms) => ms > 0);
  if (!open.length) return null;
  const lanes = Math.max(1, Math.min(phase.maxConcurrentSessions, open.length));
  const ms = Math.max(Math.max(...open), open.reduce((a, b) => a + b, 0) / lanes);
  const partial =
    (pre.estimates.some((e) => !e.complete) ? ', inference not estimated' : '') +
    (pre.simulated ? '; simulated study, the real models would take this long' : '');
  return `  eta: about ${hm(ms)} left (done about ${new Date(nowMs + ms).toISOString().slice(11, 16)} UTC; plan estimate on ${pre.estimates[0]?.gpu ?? 'the first fitting GPU'}${partial})`;
}

/** One line per model: stage, samples done / total, pod and cost so far. */
export function formatSession(v: SessionView, nowMs: number): string {
  const p = v.progress;
  if (!p) return `  ${v.workflowId}: not started yet`;
  const model = p.model.split('/').pop() ?? p.model;
  const parts = [`${model}: ${p.stage}${p.prompt && p.stage === 'inference' ? ` (${p.prompt})` : ''}`];
  if (v.inference && p.stage === 'inference') {
    const tps = v.inference.tokensPerS ? `, ${Math.round(v.inference.tokensPerS)} tok/s` : '';
    parts.push(`${v.inference.stage} ${v.inference.done}/${v.inference.total} samples${tps}`);
  }
  parts.push(`runs ${p.runsDone}/${p.runsTotal}`);
  if (p.gpu) parts.push(p.gpu);
  if (p.stage === 'waiting-for-gpu' && p.gpuHolder) parts.push(`held by ${describeGpuHolder(p.gpuHolder)}`);
  if (p.podId) parts.push(`pod ${p.podId}`);
  parts.push(`cost $${podCostUsd(p, nowMs).toFixed(4)}`);
  if (p.error) parts.push(`error: ${p.error}`);
  return `  ${parts.join(' | ')}`;
}

/** Reads a session's query state plus the live heartbeat of its running activity (samples done / total). */
async function viewSession(client: Client, workflowId: string, notBefore: Date): Promise<SessionView> {
  const handle = client.workflow.getHandle(workflowId);
  const none: SessionView = { workflowId, progress: null, inference: null, activity: null };
  try {
    const desc = await handle.describe();
    // A session with this id from an earlier study run is history, not progress.
    if (desc.startTime < notBefore) return none;
    const progress = await handle.query(sessionProgressQuery);
    const pending = desc.raw.pendingActivities?.[0];
    let inference: InferenceHeartbeat | null = null;
    const payload = pending?.heartbeatDetails?.payloads?.[0];
    if (pending?.activityType?.name === 'runInference' && payload) {
      inference = defaultPayloadConverter.fromPayload<InferenceHeartbeat>(payload);
    }
    return { workflowId, progress, inference, activity: pending?.activityType?.name ?? null };
  } catch {
    return none;
  }
}

/**
 * Prints progress until the study waits at a gate, finishes or fails. Ctrl-C only stops following: the
 * workflow keeps running on the server.
 */
export async function followStudy(opts: {
  client: Client;
  handle: WorkflowHandle;
  intervalMs?: number;
  print?: (line: string) => void;
}): Promise<FollowOutcome> {
  const print = opts.print ?? ((l: string) => console.log(l));
  let detached = false;
  const onSigint = () => {
    detached = true;
  };
  process.once('SIGINT', onSigint);
  let lastKey = '';
  let lastPrintMs = 0;
  try {
    for (;;) {
      if (detached) return 'detached';
      const desc = await opts.handle.describe();
      if (desc.status.name !== 'RUNNING') {
        if (desc.status.name === 'COMPLETED') {
          const result = (await opts.handle.result()) as { stoppedAt: string | null };
          return result.stoppedAt ? 'stopped' : 'done';
        }
        print(`workflow ${desc.status.name.toLowerCase()}`);
        return 'failed';
      }
      const study = await opts.handle.query(studyProgressQuery).catch(() => null);
      if (study) {
        const sessions = await Promise.all(
          study.sessionWorkflowIds.map((id) => viewSession(opts.client, id, desc.startTime)),
        );
        const phase = study.phaseWorkflowId
          ? await opts.client.workflow
              .getHandle(study.phaseWorkflowId)
              .query(phaseProgressQuery)
              .catch(() => null)
          : null;
        const now = Date.now();
        const sessionsUsd = sessions.reduce((a, s) => a + (s.progress ? podCostUsd(s.progress, now) : 0), 0);
        const block = [
          `[${study.phase ?? '-'}] ${phase?.waitingForBudget ? 'waiting for budget' : study.phaseState}`,
          ...sessions.map((s) => formatSession(s, now)),
          formatSpend(study, phase, sessionsUsd),
          ...(study.phaseState === 'running' ? [formatEta(phase, sessions, now)] : []),
        ]
          .filter((l) => l !== null)
          .join('\n');
        // Print on any change of state, and every 15 s anyway so the cost stays current.
        const key = block.replace(/\$[\d.]+/g, '').replace(/\n {2}eta: .*/, '');
        if (key !== lastKey || now - lastPrintMs > 15_000) {
          print(`${new Date(now).toISOString().slice(11, 19)} ${block}`);
          lastKey = key;
          lastPrintMs = now;
        }
        if (study.phaseState === 'waiting-at-gate') return 'at-gate';
        if (phase?.waitingForBudget) {
          print(`over budget before ${phase.waitingForBudget.model}: ${phase.waitingForBudget.reason}`);
          // A raise that failed validation changed nothing: say why, where the sender looks next.
          const ignored = phase.ignored?.at(-1);
          if (ignored) print(`ignored a ${ignored.signal} signal at ${ignored.at}: ${ignored.error}`);
          return 'waiting-for-budget';
        }
      }
      await delay(opts.intervalMs ?? 2_000);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
