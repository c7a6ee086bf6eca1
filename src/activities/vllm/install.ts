// The pinned vLLM on the pod: installed at prepare time when the image has none or another release.
import { log } from '@temporalio/activity';
import { q, RemoteCommandError, runChecked, type PodShell } from '../ssh/index.js';

/** PEP 440: `0.11.0+cu128` (or the sandbox's `0.11.0+sim`) is a local build of release `0.11.0`. */
export function sameRelease(have: string, want: string): boolean {
  return have !== '' && have.split('+')[0] === want.split('+')[0];
}

/** Installs the pinned vLLM when the image has none or another version; returns what `vllm --version` says. */
export async function ensureVllmVersion(sh: PodShell, want: string): Promise<string> {
  const installed = async () =>
    (await sh.exec('vllm --version 2>/dev/null | tail -n 1', { timeoutMs: 120_000 })).stdout.trim();
  let have = await installed();
  if (sameRelease(have, want)) return have;
  log.info('installing vLLM on the pod', { have: have || 'none', want });
  await runChecked(sh, 'pip install vllm', `python3 -m pip install -q ${q(`vllm==${want}`)}`, 45 * 60_000);
  have = await installed();
  if (!sameRelease(have, want))
    throw new RemoteCommandError('vLLM version check', 1, `wanted ${want}, the pod has ${have || 'none'}`);
  return have;
}
