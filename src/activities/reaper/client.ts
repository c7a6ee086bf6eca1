// Workflow status from the Temporal server, for the reaper (the activity side's view of who owns a pod).
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { WorkflowStatusLookup } from './reaper.js';

export function temporalWorkflowStatus(client: Client): WorkflowStatusLookup {
  return async (workflowId) => {
    try {
      const d = await client.workflow.getHandle(workflowId).describe();
      return { running: d.status.name === 'RUNNING', runId: d.runId };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  };
}
