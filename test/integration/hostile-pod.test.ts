// A hostile pod, end to end (issue 14, trust boundaries): the real dev server and production worker against the
// in-process RunPod emulator (sshd pods), the sandbox Hub, the simulated vLLM and the harness. One pod's results folder
// holds a name with a newline and '..', a symlink to a worker file and an oversized file; another pod's sshd host key
// changes right after readiness. Either way nothing is written outside the run folder, the session fails with a clear
// non-retryable failure, and the pod is terminated.
import { randomUUID } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ActivityFailure, RetryState, type ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelSlug } from '../../src/shared/constants.js';
import { ErrorTypes } from '../../src/shared/errors.js';
import type { PodSessionInput, PodSessionOutput } from '../../src/workflows/types.js';
import type { Study } from '../../src/study/schema.js';
import { loadStudyFile } from '../../src/study/load.js';
import type { podSessionWorkflow } from '../../src/workflows/index.js';
import { sessionProgressQuery } from '../../src/workflows/messages.js';
import { scenarioByName, type SandboxControl } from '../../sandbox/scenarios.js';
import { freePort } from '../activities/sandbox-pod.js';
import { startSandboxWorld, type SandboxWorld } from '../support/sandbox-world.js';

/** The worker's per-file transfer limit in this test; the planted file is three times that. */
const MAX_FILE_BYTES = 1024 * 1024;

describe('hostile pod', () => {
  let world: SandboxWorld;
  let env: SandboxWorld['env'];
  let servers: SandboxWorld['servers'];
  let control: SandboxControl;
  let dir: string;
  let resultsDir: string;
  let taskQueue: string;
  // A worker-side file outside the results folder that the hostile pod links to.
  let canary: string;
  const canaryText = `canary ${randomUUID()}\n`;

  const base = loadStudyFile('studies/rq1.sandbox.yaml');
  const model = base.phases.find((p) => p.id === 'phase2a')?.models[0];
  if (!model) throw new Error('phase2a has no model');
  const slug = modelSlug(model.repoId);

  beforeAll(async () => {
    world = await startSandboxWorld({
      name: 'hostile-pod',
      workerEnv: { POD_POLL_INTERVAL_MS: '400', TRANSFER_MAX_FILE_BYTES: String(MAX_FILE_BYTES) },
    });
    ({ env, servers, control, dir, resultsDir, taskQueue } = world);
    canary = join(dir, 'worker-secret.txt');
    writeFileSync(canary, canaryText);
  });

  afterAll(() => world?.stop());

  /** One model, four samples, a vLLM port of its own (the session fails at the first strategy's transfer). */
  async function smallStudy(): Promise<Study> {
    return {
      ...base,
      study: `hp-${randomUUID().slice(0, 8)}`,
      vllm: { ...base.vllm, port: await freePort() },
      harness: { ...base.harness, concurrency: 2, baselineSeconds: 1, limit: 4 },
      download: { stallTimeoutMs: 10_000, verifySha256: false },
    };
  }

  /** Runs one pod session with `fault` applied, to its end; the pod must be terminated whatever happened. */
  async function runSession(study: Study, fault: (c: SandboxControl) => Promise<void>) {
    await scenarioByName('none').apply(control);
    await fault(control);
    try {
      const input: PodSessionInput = { study, phaseId: 'phase2a', model: model as PodSessionInput['model'] };
      const handle = await env.client.workflow.start<typeof podSessionWorkflow>('podSessionWorkflow', {
        taskQueue,
        workflowId: `hostile-${study.study}`,
        args: [input],
      });
      const outcome = await handle.result().then(
        (out: PodSessionOutput) => ({ out, err: null }),
        (err: unknown) => ({ out: null, err }),
      );
      const progress = await handle.query(sessionProgressQuery);
      // The pod is terminated, no pod is left and nothing bills any more.
      expect(progress.podTerminatedAt).not.toBeNull();
      expect(servers.runpod.pods()).toHaveLength(0);
      expect(servers.runpod.billing().accruingUsdPerHr).toBe(0);
      return { ...outcome, progress };
    } finally {
      await scenarioByName('none').apply(control);
    }
  }

  /** The activity failure under a failed session. */
  function activityFailure(err: unknown): { activity: ActivityFailure; failure: ApplicationFailure } {
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const activity = (err as WorkflowFailedError).cause;
    expect(activity).toBeInstanceOf(ActivityFailure);
    return {
      activity: activity as ActivityFailure,
      failure: (activity as ActivityFailure).cause as ApplicationFailure,
    };
  }

  /** Every entry below `root`, relative, with what it is. */
  function walk(root: string): { path: string; kind: 'dir' | 'file' | 'symlink' | 'other'; bytes: number }[] {
    const out: { path: string; kind: 'dir' | 'file' | 'symlink' | 'other'; bytes: number }[] = [];
    const visit = (d: string) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        const s = lstatSync(p);
        const kind = s.isSymbolicLink() ? 'symlink' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
        out.push({ path: relative(root, p), kind, bytes: s.size });
        if (kind === 'dir') visit(p);
      }
    };
    visit(root);
    return out;
  }

  it('a results folder with a newline-and-.. name, a symlink and an oversized file: refused, nothing escapes', async () => {
    const study = await smallStudy();
    const { err, progress } = await runSession(study, (c) =>
      c.injectRunPodFault({
        type: 'pod',
        effect: 'hostile-results',
        namePrefix: 'gpustudy--',
        count: 1,
        linkTarget: canary,
        oversizeBytes: 3 * MAX_FILE_BYTES,
      }),
    );

    const { failure } = activityFailure(err);
    expect([ErrorTypes.UnsafePodFile, ErrorTypes.TransferLimit]).toContain(failure.type);
    expect(failure.nonRetryable).toBe(true);
    // One clear line naming what was refused.
    expect(failure.message).not.toContain('\n');
    expect(failure.message).toMatch(/hostile|leak\.json|big\.bin|TRANSFER_MAX_FILE_BYTES/);
    expect(progress.stage).toBe('failed');
    expect(progress.error).toBe(failure.message);

    // Nothing outside a run folder or the session's logs folder, only plain files with plain names, none of them the
    // planted ones, none over the limit, none carrying the linked worker file.
    const sessionDir = join(study.study, 'phase2a', slug);
    const entries = walk(resultsDir);
    const allowed = new RegExp(
      `^${sessionDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(zero-shot|few-shot|logs)/[^/]+/[A-Za-z0-9][A-Za-z0-9._-]*$`,
    );
    for (const e of entries.filter((x) => x.kind !== 'dir')) {
      expect(e.kind, e.path).toBe('file');
      expect(e.path).toMatch(allowed);
      expect(e.path).not.toMatch(/leak\.json|big\.bin|hostile/);
      expect(e.bytes).toBeLessThanOrEqual(MAX_FILE_BYTES);
      expect(readFileSync(join(resultsDir, e.path), 'utf8')).not.toContain(canaryText.trim());
    }
    // Directories only on the way to those folders (no `<run>.partial` or `hostile` beside a run folder).
    for (const e of entries.filter((x) => x.kind === 'dir')) {
      expect(
        [study.study, join(study.study, 'phase2a'), sessionDir].includes(e.path) ||
          /^(zero-shot|few-shot|logs)(\/[^/]+)?$/.test(relative(sessionDir, e.path)),
        e.path,
      ).toBe(true);
    }
    // Nothing appeared next to the results folder either, and the linked file is untouched.
    expect(readdirSync(dir).sort()).toEqual(['id_ed25519', 'id_ed25519.pub', 'results', 'runpod', 'worker-secret.txt']);
    expect(readFileSync(canary, 'utf8')).toBe(canaryText);
  });

  it('a host key that changes after readiness: HostKeyMismatchError, not retried, pod terminated', async () => {
    const study = await smallStudy();
    const { err, progress } = await runSession(study, (c) => scenarioByName('host-key-swap').apply(c));

    const { activity, failure } = activityFailure(err);
    expect(failure.type).toBe(ErrorTypes.HostKeyMismatch);
    expect(failure.nonRetryable).toBe(true);
    expect(activity.retryState).toBe(RetryState.NON_RETRYABLE_FAILURE);
    // The readiness check pinned the pod's first key; the session reports it, and the failure names both.
    expect(progress.hostKeySha256).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(failure.message).toContain(`expected ${progress.hostKeySha256}`);
    expect(failure.message).toMatch(/presented SHA256:[A-Za-z0-9+/]{43}/);
    expect(failure.message).toMatch(/host key of 127\.0\.0\.1:\d+ changed/);
    expect(progress.stage).toBe('failed');
    expect(progress.runsDone).toBe(0);
  });
});
