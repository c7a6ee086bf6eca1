import type { GpuLockHolder } from '../activities/workspace/index.js';

/**
 * One line naming who holds a GPU of the team's server, for the workflow's current details and the CLI. Pure (safe
 * in workflows). The record comes from the host: its fields were length-capped and stripped of control characters.
 */
export function describeGpuHolder(h: GpuLockHolder): string {
  const r = h.record;
  const beat = h.heartbeatAgeMs === null ? '' : `, heartbeat ${Math.round(h.heartbeatAgeMs / 1000)} s ago`;
  if (!r) return `an unreadable lock (${h.problem ?? 'no owner record'}${beat})`;
  return (
    `study ${r.study}, phase ${r.phase}, model ${r.model} (workflow ${r.workflowId}), ` +
    `started by ${r.startedBy}, since ${r.acquiredAt}${beat}`
  );
}
