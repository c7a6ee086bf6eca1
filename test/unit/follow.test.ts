import { describe, expect, it } from 'vitest';
import { formatSpend, podCostUsd } from '../../src/cli/follow.js';
import type { PhaseProgress, PodSessionProgress, StudyProgress } from '../../src/shared/types.js';

const study = (o: Partial<StudyProgress>): StudyProgress => ({
  study: 's',
  phase: 'phase2a',
  phaseState: 'running',
  gate: null,
  completedPhases: [],
  sessionWorkflowIds: [],
  phaseWorkflowId: 'p',
  spentUsd: 0,
  ...o,
});
const phase: PhaseProgress = {
  phaseId: 'phase2a',
  sessions: [],
  spentUsd: 1,
  committedUsd: 0,
  studySpentUsd: 2,
  budget: { phaseUsd: 10, studyUsd: 100, sessionEstimateUsd: 1 },
  waitingForBudget: null,
  lockedGpuTypeId: null,
  ignored: [],
};

describe('progress output', () => {
  it('adds a running phase to the study spend, but not a completed one twice', () => {
    expect(formatSpend(study({ spentUsd: 2 }), phase, 0.5)).toBe(
      '  spend: phase $1.0000 (budget $10.00), study $3.0000 (budget $100.00)',
    );
    expect(
      formatSpend(study({ spentUsd: 3, completedPhases: ['phase2a'], phaseState: 'waiting-at-gate' }), phase, 1),
    ).toBe('  spend: phase $1.0000 (budget $10.00), study $3.0000 (budget $100.00)');
  });

  it('meters a pod from create to termination', () => {
    const p = {
      costPerHr: 3.6,
      podCreatedAt: '2026-01-01T00:00:00Z',
      podTerminatedAt: '2026-01-01T00:10:00Z',
    } as PodSessionProgress;
    expect(podCostUsd(p, Date.parse('2026-01-01T05:00:00Z'))).toBeCloseTo(0.6);
    expect(podCostUsd({ ...p, podTerminatedAt: null }, Date.parse('2026-01-01T00:20:00Z'))).toBeCloseTo(1.2);
  });
});
