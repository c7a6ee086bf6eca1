import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { GateRecord } from '../../src/activities/analysis/index.js';
import { decideGateUpdate, gateStatusQuery } from '../../src/workflows/messages.js';
import { loadStudyFile } from '../../src/study/load.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxWorld, waitFor, type SandboxWorld } from '../support/sandbox-world.js';

const run = promisify(execFile);

/**
 * The rule's three cases end to end on the sandbox: the simulated vLLM answers by each overlay's profile, phase 2a
 * runs for real (pods, hf, harness, CodeCarbon), and the study stops at the phase 2b gate with the packet's
 * recommendation. Then a decision closes each gate, and `npm run report` reproduces the report from the folder.
 */
describe('decision packets on the sandbox', () => {
  let world: SandboxWorld;
  let servers: SandboxWorld['servers'];
  let resultsDir: string;

  beforeAll(async () => {
    world = await startSandboxWorld({ name: 'gate-e2e' });
    ({ servers, resultsDir } = world);
  });

  afterAll(() => world?.stop());

  const cases = [
    { profile: 'improves', action: 'approve', basis: 'confirms-improvement', verdict: 'improves' },
    { profile: 'degrades', action: 'skip', basis: 'trend-established', verdict: 'degrades' },
    { profile: 'inconclusive', action: 'approve', basis: 'adds-data-point', verdict: 'inconclusive' },
  ] as const;

  it.each(cases)(
    'few-shot $profile: the study stops at the gate recommending $action ($basis)',
    async ({ profile, action, basis, verdict }) => {
      const study = {
        ...loadStudyFile(`studies/rq1-fewshot-${profile}.sandbox.yaml`),
        study: `profile-${profile}-${randomUUID().slice(0, 6)}`,
      };
      const handle = await world.startStudy({ study, startPhase: 'phase2a' });
      const gate = await waitFor(
        'the phase 2b gate',
        async () => {
          const g = await handle.query(gateStatusQuery);
          return g.open ? g : undefined;
        },
        { timeoutMs: 600_000 },
      );
      const packet = gate.packet;
      expect(packet, 'the analysis wrote a packet').not.toBeNull();
      expect(packet?.simulated).toBe(true);
      expect(packet?.runs).toHaveLength(4);
      expect(packet?.decision.perModel.map((m) => m.verdict)).toEqual([verdict, verdict]);
      expect(packet?.decision.recommendation).toMatchObject({ action, basis });
      // Both models' few-shot vs zero-shot contrasts carry McNemar and the bootstrap interval of the F1 difference.
      const contrasts = packet?.comparisons.filter((c) => c.verdict !== null) ?? [];
      expect(contrasts).toHaveLength(2);
      for (const c of contrasts) {
        expect(c.nCommon).toBe(48);
        expect(c.pAdjusted).not.toBeNull();
        expect(c.f1Ci).toHaveLength(2);
      }

      const studyDir = join(resultsDir, study.study);
      const packetJson = join(studyDir, 'phase2a', 'decision-packet.json');
      expect(gate.packetSha256).toBe(execFileSync('sha256sum', [packetJson], { encoding: 'utf8' }).split(' ')[0]);
      expect(readFileSync(join(studyDir, 'phase2a', 'decision-packet.md'), 'utf8')).toMatch(new RegExp(action, 'i'));
      for (const f of ['report.md', 'report.html']) expect(existsSync(join(studyDir, f))).toBe(true);
      const figures = readdirSync(join(studyDir, 'figures'));
      expect(figures.some((f) => f.endsWith('.svg'))).toBe(true);
      expect(figures.some((f) => f.endsWith('.png'))).toBe(true);

      // Follow the recommendation: skip ends the study with the final report; approve is played by stop here
      // (phase 2b's decision mechanics are covered by test/workflows/gate.test.ts).
      const decision = action === 'skip' ? 'skip' : 'stop';
      const record = await handle.executeUpdate(decideGateUpdate, {
        args: [
          {
            gate: 'phase2b',
            decision,
            by: 'e2e',
            reason: `profile ${profile}`,
            packetSha256: gate.packetSha256 ?? undefined,
          },
        ],
      });
      expect(record.packetSha256).toBe(gate.packetSha256);
      const result = await handle.result();
      expect(decision === 'skip' ? result.skipped : [result.stoppedAt]).toEqual(['phase2b']);
      const decisions = JSON.parse(readFileSync(join(studyDir, 'gate-decisions.json'), 'utf8')) as {
        decisions: GateRecord[];
      };
      expect(decisions.decisions).toEqual([record]);
      const reportMd = readFileSync(join(studyDir, 'report.md'), 'utf8');
      expect(reportMd).toContain(`profile ${profile}`);
      expect(reportMd).toMatch(/simulated/i);

      // `npm run report` regenerates the same report from the results folder alone.
      await run('npx', ['tsx', 'src/cli/main.ts', 'report', '--study', study.study], {
        env: { ...process.env, RESULTS_DIR: resultsDir },
      });
      expect(readFileSync(join(studyDir, 'report.md'), 'utf8')).toBe(reportMd);
      expect(servers.runpod.pods()).toHaveLength(0);
    },
  );
});
