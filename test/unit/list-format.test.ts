import { describe, expect, it } from 'vitest';
import { formatStudyList, type StudyListing } from '../../src/cli/list.js';

const row = (over: Partial<StudyListing>): StudyListing => ({
  study: 'rq1',
  workflowId: 'study-rq1',
  status: 'RUNNING',
  startedAt: '2026-12-01T10:00:00.000Z',
  closedAt: null,
  progress: null,
  ...over,
});

describe('npm run list output', () => {
  it('shows the phase, the gate, the spend and the completed phases of each study', () => {
    const text = formatStudyList(
      [
        row({
          progress: {
            phase: 'phase2a',
            phaseState: 'waiting-at-gate',
            completedPhases: ['phase1', 'phase2a'],
            spentUsd: 12.345,
            gate: { nextPhase: 'phase2b', since: '2026-12-02T08:00:00.000Z' },
          },
        }),
        row({ study: 'rq2', workflowId: 'study-rq2', status: 'FAILED', closedAt: '2026-12-03T00:00:00.000Z' }),
      ],
      { all: true },
    );
    expect(text.split('\n')[0]).toBe(
      'rq1                  phase2a done, waiting at the phase2b gate since 2026-12-02T08:00:00.000Z  $12.35 spent  done: phase1, phase2a',
    );
    expect(text).toContain('rq2                  failed 2026-12-03T00:00:00.000Z');
    expect(text).toContain('study-rq2, started 2026-12-01T10:00:00.000Z');
  });

  it('says what an empty list means', () => {
    expect(formatStudyList([], { all: false })).toBe('no running studies (--all lists finished ones too)');
    expect(formatStudyList([], { all: true })).toBe('no studies');
  });
});
