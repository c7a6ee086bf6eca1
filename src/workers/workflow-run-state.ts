// Temporal's view of a workflow run, for the GPU lock on the team's server (is the lock's holder still running?).
import type { Client } from '@temporalio/client';
import type { WorkflowRunStateLookup } from '../activities/workspace/index.js';

/**
 * 'closed' only when this server knows the run and it has ended; a run it does not know (another team member's
 * Temporal, or past retention) or an unreachable server is 'unknown', and the lock then goes by the heartbeat alone.
 */
export function temporalWorkflowRunState(client: Client): WorkflowRunStateLookup {
  return async ({ workflowId, runId }) => {
    try {
      const d = await client.workflow.getHandle(workflowId, runId).describe();
      switch (d.status.name) {
        case 'RUNNING':
        case 'PAUSED':
          return 'running';
        case 'COMPLETED':
        case 'FAILED':
        case 'CANCELLED':
        case 'TERMINATED':
        case 'CONTINUED_AS_NEW':
        case 'TIMED_OUT':
          return 'closed';
        default:
          return 'unknown';
      }
    } catch {
      // Not found (another server's run, or past retention) or the server unreachable: only the heartbeat can tell.
      return 'unknown';
    }
  };
}
