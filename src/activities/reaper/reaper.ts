import { KEPT_POD_NAME_PREFIX, parsePodName, POD_NAME_PREFIX } from '../../shared/constants.js';
import type { ReapDecision, ReapOrphanPodsInput, ReapOrphanPodsOutput } from './types.js';
import type { RunPodApi } from '../runpod/index.js';

/** What the reaper needs to know about a workflow: is it running, and which run. Null when it does not exist. */
export type WorkflowStatusLookup = (workflowId: string) => Promise<{ running: boolean; runId: string } | null>;

export interface ReaperDeps {
  runpod: RunPodApi;
  workflowStatus: WorkflowStatusLookup;
  now?: () => number;
  signal?: AbortSignal;
}

/**
 * Lists the account's pods carrying this project's name prefix and terminates those whose owning workflow
 * run is closed or unknown and that are older than the grace period. Pods of other projects are never touched.
 */
export async function reapOrphanPods(deps: ReaperDeps, input: ReapOrphanPodsInput): Promise<ReapOrphanPodsOutput> {
  const now = deps.now?.() ?? Date.now();
  const opts = deps.signal ? { signal: deps.signal } : {};
  const pods = await deps.runpod.findPodsByNamePrefix(`${POD_NAME_PREFIX}--`, opts);
  const decisions: ReapDecision[] = [];
  // Pods kept for results not yet home: listed so a person sees them, never terminated here.
  for (const pod of await deps.runpod.findPodsByNamePrefix(`${KEPT_POD_NAME_PREFIX}--`, opts)) {
    const created = pod.createdAt ? Date.parse(pod.createdAt) : Number.NaN;
    decisions.push({
      podId: pod.id,
      name: pod.name,
      ownerWorkflowId: null,
      ageMs: Number.isNaN(created) ? null : now - created,
      costPerHr: pod.cost ?? 0,
      action: 'kept',
      reason: `holds results not brought home: npm run fetch-results -- --pod ${pod.id}`,
    });
  }
  for (const pod of pods) {
    const created = pod.createdAt ? Date.parse(pod.createdAt) : Number.NaN;
    const ageMs = Number.isNaN(created) ? null : now - created;
    const owner = parsePodName(pod.name);
    const base = {
      podId: pod.id,
      name: pod.name,
      ownerWorkflowId: owner?.sessionWorkflowId ?? null,
      ageMs,
      costPerHr: pod.cost ?? 0,
    };
    let reason: string;
    if (!owner) {
      reason = 'name does not identify an owning workflow';
    } else {
      const status = await deps.workflowStatus(owner.sessionWorkflowId);
      const ours = status?.runId.replace(/-/g, '').startsWith(owner.runIdPrefix) ?? false;
      if (status?.running && ours) {
        decisions.push({ ...base, action: 'kept', reason: 'owning workflow run is running' });
        continue;
      }
      reason = !status
        ? 'owning workflow not found'
        : !ours
          ? 'owning run was replaced by a newer run'
          : 'owning workflow run is closed';
    }
    // Age unknown counts as old: a pod that cannot say when it was made must not live for ever.
    if (ageMs !== null && ageMs < input.graceMs) {
      decisions.push({ ...base, action: 'kept', reason: `${reason}, but younger than the grace period` });
      continue;
    }
    if (input.dryRun) {
      decisions.push({ ...base, action: 'would-terminate', reason });
      continue;
    }
    await deps.runpod.deletePod(pod.id, opts);
    decisions.push({ ...base, action: 'terminated', reason });
  }
  return { checkedAt: new Date(now).toISOString(), dryRun: input.dryRun, decisions };
}

/** One line per pod, for the CLI and the workflow's log. */
export function formatDecision(d: ReapDecision): string {
  const age = d.ageMs === null ? 'age unknown' : `${Math.round(d.ageMs / 60_000)} min old`;
  return `${d.action.padEnd(15)} ${d.podId} ${d.name} (${age}, $${d.costPerHr.toFixed(2)}/h): ${d.reason}`;
}
