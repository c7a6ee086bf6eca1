import { describe, expect, it } from 'vitest';
import { phaseSettings, StudySchema } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';

describe('phase overrides of study-wide settings', () => {
  const raw = () => {
    const s = loadStudyFile('studies/rq1.yaml');
    return { ...s, harness: { ...s.harness, requestTimeoutS: 900, interruptionPolicy: 'resume' as const } };
  };

  it('override only the fields they name (defaults of the study-wide schema are not re-applied)', () => {
    const s = raw();
    const study = StudySchema.parse({
      ...s,
      phases: s.phases.map((p) =>
        p.id === 'phase2a' ? { ...p, harness: { concurrency: 8 }, vllm: { maxNumSeqs: 4 } } : p,
      ),
    });
    const { harness, vllm } = phaseSettings(study, 'phase2a');
    expect(harness).toMatchObject({ concurrency: 8, requestTimeoutS: 900, interruptionPolicy: 'resume' });
    expect(vllm).toMatchObject({ maxNumSeqs: 4, maxModelLen: study.vllm.maxModelLen, port: study.vllm.port });
  });

  it('still reject unknown keys and bad values', () => {
    const s = raw();
    const bad = StudySchema.safeParse({
      ...s,
      phases: s.phases.map((p) =>
        p.id === 'phase2a' ? { ...p, harness: { interruptionPolicy: 'retry', concurrncy: 2 } } : p,
      ),
    });
    expect(bad.success).toBe(false);
    const text = JSON.stringify(bad.error?.issues);
    expect(text).toContain('interruptionPolicy');
    expect(text).toContain('concurrncy');
  });

  it('default the pod-side settings: restart on a dead server, no sha256, the worker stall timeout', () => {
    const study = loadStudyFile('studies/rq1.yaml');
    expect(study.harness).toMatchObject({ interruptionPolicy: 'restart', maxInterruptions: 2 });
    expect(study.download).toEqual({ verifySha256: false });
  });
});
