// The emulator's 'hostile-results' pod fault on its own: a harness run started in a run folder of a hostile pod finds
// the planted entries there (what test/integration/hostile-pod.test.ts relies on), and other python3 calls pass through.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunPodClient } from '../../src/activities/runpod/index.js';
import { startRunPodEmulator, type RunPodEmulator } from '../../sandbox/runpod-emulator/index.js';
import { HOSTILE_NAMES } from '../../sandbox/runpod-emulator/hostile.js';
import { connector, createdPodWithSsh, pinned } from '../activities/sandbox-pod.js';

const API_KEY = 'hostile-fault-key';
const dir = mkdtempSync(join(tmpdir(), 'hostile-fault-'));
let emu: RunPodEmulator;
let client: RunPodClient;

beforeAll(async () => {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id_ed25519')]);
  emu = await startRunPodEmulator({
    apiKeys: [API_KEY],
    timeline: { provisioningDelayMs: 50, startingDelayMs: 50, imagePullDelayMs: 50, portDelayMs: 50 },
  });
  client = new RunPodClient({ apiKey: API_KEY, baseUrl: emu.url });
});

afterAll(async () => {
  for (const p of emu?.pods() ?? []) await client.deletePod(p.id);
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the 'hostile-results' pod fault", () => {
  it('plants a newline-and-.. name, a symlink and a sparse oversized file in the run folder as the harness starts', async () => {
    emu.injectFault({
      type: 'pod',
      effect: 'hostile-results',
      namePrefix: 'gpustudy--hf',
      linkTarget: '/etc/hostname',
      oversizeBytes: 5 * 2 ** 30,
    });
    const publicKey = readFileSync(join(dir, 'id_ed25519.pub'), 'utf8').trim();
    const { podId, ssh } = await createdPodWithSsh({ client, name: 'gpustudy--hf--p--m--t1-r0', publicKey });
    const sh = await connector(join(dir, 'id_ed25519')).connect(pinned(emu, podId, ssh));
    try {
      const ws = emu.pods().find((p) => p.id === podId)!.workspaceDir;
      const runDir = join(ws, 'runs', 'r1');
      // Any other python3 call passes straight through, and plants nothing.
      expect((await sh.exec(`mkdir -p '${runDir}' && cd '${runDir}' && python3 -c 'print(6*7)'`)).stdout.trim()).toBe(
        '42',
      );
      expect(readdirSync(runDir)).toEqual([]);
      // The harness's start plants first (the module itself is not on this pod's path: it then fails).
      await sh.exec(`cd '${runDir}' && python3 -m harness.run --spec spec.json`);
      expect(readdirSync(runDir).sort()).toEqual(
        [HOSTILE_NAMES.oversized, HOSTILE_NAMES.traversal, HOSTILE_NAMES.symlink].sort(),
      );
      expect(lstatSync(join(runDir, HOSTILE_NAMES.traversal)).isFile()).toBe(true);
      expect(lstatSync(join(runDir, HOSTILE_NAMES.symlink)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(runDir, HOSTILE_NAMES.symlink))).toBe('/etc/hostname');
      const big = lstatSync(join(runDir, HOSTILE_NAMES.oversized));
      expect(big.size).toBe(5 * 2 ** 30);
      expect(big.blocks * 512).toBeLessThan(1 << 20); // sparse: costs no disk
      expect(emu.pods().find((p) => p.id === podId)?.faults.hostileResults).toBe(true);
    } finally {
      sh.close();
    }
  });
});
