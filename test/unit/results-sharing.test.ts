import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAnalysisActivities } from '../../src/activities/analysis/index.js';
import {
  createKeptResultsActivities,
  createResultsActivities,
  createResultsTransferActivities,
  RESULTS_SCOPES,
  shareResults,
  withSharedResults,
  type ResultsStore,
} from '../../src/activities/results/index.js';

/** A store over a second folder, recording each call: the contract's semantics in a few lines. */
function folderStore(storeDir: string, resultsDir: string) {
  const calls: string[] = [];
  const store: ResultsStore = {
    url: `folder://${storeDir}`,
    push: ({ paths }) => {
      calls.push(`push ${[...paths].sort().join(',')}`);
      for (const p of paths) {
        mkdirSync(join(storeDir, p, '..'), { recursive: true });
        writeFileSync(join(storeDir, p), readFileSync(join(resultsDir, p)));
      }
      return Promise.resolve({ uploaded: paths });
    },
    pull: ({ prefix, prune }) => {
      calls.push(`pull ${prefix}${prune ? ' prune' : ''}`);
      return Promise.resolve({ downloaded: [], removed: [] });
    },
    remove: ({ paths }) => {
      calls.push(`remove ${[...paths].sort().join(',')}`);
      for (const p of paths) rmSync(join(storeDir, p), { force: true });
      return Promise.resolve();
    },
  };
  return { store, calls };
}

describe('shared results', () => {
  let dir: string;
  let resultsDir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sharing-'));
    resultsDir = join(dir, 'results');
    mkdirSync(join(resultsDir, 's1/p/m/zero-shot/r1'), { recursive: true });
    writeFileSync(join(resultsDir, 's1/p/m/zero-shot/r1/old.json'), '{}');
    writeFileSync(join(resultsDir, 's1/p/m/zero-shot/r1/gone.json'), '{}');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('pulls the scope first, then pushes only what the activity wrote and removes what it removed', async () => {
    const { store, calls } = folderStore(join(dir, 'store'), resultsDir);
    const run = 's1/p/m/zero-shot/r1';
    const out = await withSharedResults({ store, resultsDir }, { prefix: run }, () => {
      calls.push('work');
      writeFileSync(join(resultsDir, run, 'manifest.json'), '{"a":1}');
      writeFileSync(join(resultsDir, run, 'manifest.json.tmp'), 'scratch');
      rmSync(join(resultsDir, run, 'gone.json'));
      return Promise.resolve(7);
    });
    expect(out).toBe(7);
    expect(calls).toEqual([`pull ${run}`, 'work', `push ${run}/manifest.json`, `remove ${run}/gone.json`]);
  });

  it('reads only: pulls and never pushes; a failed activity shares nothing', async () => {
    const { store, calls } = folderStore(join(dir, 'store'), resultsDir);
    await withSharedResults({ store, resultsDir }, { prefix: 's1', readOnly: true }, () => {
      writeFileSync(join(resultsDir, 's1/new.json'), '{}');
      return Promise.resolve();
    });
    await expect(
      withSharedResults({ store, resultsDir }, { prefix: 's1' }, () => {
        writeFileSync(join(resultsDir, 's1/half.json'), '{}');
        return Promise.reject(new Error('died'));
      }),
    ).rejects.toThrow('died');
    expect(calls).toEqual(['pull s1', 'pull s1']);
  });

  it('covers every activity that reads or writes the results folder, and leaves the rest alone', async () => {
    const deps = {
      resultsDir,
      transferLimits: {
        maxFileBytes: 1,
        maxFilesPerRun: 1,
        maxSessionBytes: 1,
        maxJsonBytes: 1,
        maxLogBytes: 1,
      },
      projectRoot: dir,
      analysis: { run: () => Promise.reject(new Error('unused')) },
      connector: { connect: () => Promise.reject(new Error('unused')) },
    };
    const touching = [
      ...Object.keys(createResultsActivities(deps)),
      ...Object.keys(createResultsTransferActivities(deps)),
      ...Object.keys(createKeptResultsActivities(deps)),
      ...Object.keys(createAnalysisActivities(deps)),
      'preflightPhase',
    ].sort();
    expect(Object.keys(RESULTS_SCOPES).sort()).toEqual(touching);

    const { store, calls } = folderStore(join(dir, 'store'), resultsDir);
    const other = () => Promise.resolve('untouched');
    const kept = createKeptResultsActivities(deps);
    const shared = shareResults(
      { removeKeptResults: (i: { study: string; podId: string }) => kept.removeKeptResults(i), other },
      { store, resultsDir },
    );
    expect(await shared.other()).toBe('untouched');
    await shared.removeKeptResults({ study: 's1', podId: 'pod1' });
    expect(calls).toEqual(['pull s1/kept-pods prune']);
  });
});
