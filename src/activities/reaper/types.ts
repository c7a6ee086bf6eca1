/**
 * Input and output of reapOrphanPods. Pure types, safe for workflow code (which imports them with `import type`).
 * Nothing here may carry a secret: Temporal stores all of it in workflow history.
 */

export interface ReapOrphanPodsInput {
  /** Pods younger than this are kept even without a running owner (their workflow may be starting). */
  graceMs: number;
  dryRun: boolean;
}
export interface ReapDecision {
  podId: string;
  name: string;
  ownerWorkflowId: string | null;
  ageMs: number | null;
  costPerHr: number;
  action: 'kept' | 'terminated' | 'would-terminate';
  reason: string;
}
export interface ReapOrphanPodsOutput {
  checkedAt: string;
  dryRun: boolean;
  decisions: ReapDecision[];
}
