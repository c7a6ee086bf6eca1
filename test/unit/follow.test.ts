import { describe, expect, it } from 'vitest';
import { formatEta, formatSpend, podCostUsd, sessionRemainingMs, type SessionView } from '../../src/cli/follow.js';
import type { SessionTimeEstimate } from '../../src/activities/plan/index.js';
import type { PhaseProgress, PodSessionProgress, StudyProgress } from '../../src/workflows/types.js';

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
  maxConcurrentSessions: 1,
  preflight: null,
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

const MIN = 60_000;
/** 5 min pull, 10 min download, 5 min load, two prompts of 30 and 60 min: 110 min. */
const estimate = (repoId: string): SessionTimeEstimate => ({
  repoId,
  gpu: '1x NVIDIA H200',
  imagePullMs: 5 * MIN,
  downloadMs: 10 * MIN,
  loadMs: 5 * MIN,
  perPromptMs: [
    { prompt: 'zero-shot', ms: 30 * MIN },
    { prompt: 'few-shot', ms: 60 * MIN },
  ],
  totalMs: 110 * MIN,
  complete: true,
});
const session = (o: Partial<PodSessionProgress>): PodSessionProgress => ({
  model: 'Qwen/A',
  stage: 'queued',
  prompt: null,
  podId: null,
  gpu: null,
  costPerHr: 0,
  podCreatedAt: null,
  podTerminatedAt: null,
  runsDone: 0,
  runsTotal: 2,
  error: null,
  ...o,
});

describe('ETA from the plan estimate', () => {
  const e = estimate('Qwen/A');
  it('counts the parts of a session not reached yet', () => {
    expect(sessionRemainingMs(e, null, null)).toBe(110 * MIN);
    expect(sessionRemainingMs(e, session({ stage: 'reserving' }), null)).toBe(110 * MIN);
    expect(sessionRemainingMs(e, session({ stage: 'downloading' }), null)).toBe(105 * MIN);
    expect(sessionRemainingMs(e, session({ stage: 'starting-vllm' }), null)).toBe(95 * MIN);
    // Restarted vLLM under the second prompt: the first is done.
    expect(sessionRemainingMs(e, session({ stage: 'starting-vllm', runsDone: 1 }), null)).toBe(65 * MIN);
    expect(sessionRemainingMs(e, session({ stage: 'done', runsDone: 2 }), null)).toBe(0);
    expect(sessionRemainingMs(undefined, session({}), null)).toBeNull();
  });

  it('takes the running prompt by its share of samples left', () => {
    const inference = { stage: 'inference' as const, done: 25, total: 100, tokensPerS: 900 };
    expect(sessionRemainingMs(e, session({ stage: 'inference', runsDone: 0 }), inference)).toBe(22.5 * MIN + 60 * MIN);
    expect(sessionRemainingMs(e, session({ stage: 'inference', runsDone: 1 }), inference)).toBe(45 * MIN);
    // The first run coming home: only the second prompt is ahead.
    expect(sessionRemainingMs(e, session({ stage: 'transferring', runsDone: 0 }), null)).toBe(60 * MIN);
  });

  it('spreads the sessions left over the concurrent ones, never below the longest', () => {
    const views: SessionView[] = [
      { workflowId: 'a', progress: session({ stage: 'downloading' }), inference: null, activity: null },
      { workflowId: 'b', progress: null, inference: null, activity: null },
    ];
    const withPreflight = (lanes: number): PhaseProgress => ({
      ...phase,
      sessions: ['a', 'b'],
      maxConcurrentSessions: lanes,
      preflight: { checks: [], estimates: [e, estimate('Qwen/B')], phaseCostUsd: null, simulated: false },
    });
    const now = Date.parse('2026-01-01T00:00:00Z');
    // One at a time: 105 + 110 min.
    expect(formatEta(withPreflight(1), views, now)).toBe(
      '  eta: about 3 h 35 min left (done about 03:35 UTC; plan estimate on 1x NVIDIA H200)',
    );
    // Two at once: the longer one, 110 min.
    expect(formatEta(withPreflight(2), views, now)).toContain('about 1 h 50 min left');
    expect(formatEta(phase, views, now)).toBeNull();
    // A sandbox study says the estimate is not for the simulated run.
    const sim = withPreflight(2);
    expect(
      formatEta({ ...sim, preflight: sim.preflight && { ...sim.preflight, simulated: true } }, views, now),
    ).toMatch(/simulated study, the real models would take this long\)$/);
  });
});
