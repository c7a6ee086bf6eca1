// The 'hostile-results' pod fault: a pod that plants, in every harness run folder, entries a careless results
// transfer would mishandle. It works through the pod's PATH (a `python3` shim first on it), so it happens inside
// the pod as the run starts, before any transfer looks, whatever way the worker lists the folder.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HostileResultsSettings {
  /** What the planted symlink `leak.json` points to. */
  linkTarget: string;
  /** Apparent size of the planted sparse file `big.bin`, in bytes. */
  oversizeBytes: number;
}

/** The planted entries' names (relative to the run folder). */
export const HOSTILE_NAMES = {
  /** A name with a newline and `..`: a line-based listing reads `hostile` and `..` from it. */
  traversal: 'hostile\n..',
  symlink: 'leak.json',
  oversized: 'big.bin',
} as const;

/** Where the shim lives in a pod directory; the emulator puts it first on the pod's PATH. */
export function hostileBinDir(podDir: string): string {
  return join(podDir, 'hostile-bin');
}

const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Writes `<pod dir>/hostile-bin/python3`: for `python3 -m harness.run` it plants the entries in its working
 * directory (the run folder; idempotent, so a re-attached run plants the same), then execs the real python3 (the
 * next one on PATH). Every other python3 call passes straight through.
 */
export function writeHostileShim(podDir: string, settings: HostileResultsSettings): void {
  const bin = hostileBinDir(podDir);
  mkdirSync(bin, { recursive: true });
  const script = [
    '#!/bin/sh',
    "# RunPod emulator fault 'hostile-results' (sandbox/runpod-emulator/hostile.ts).",
    `shim=${sq(bin)}`,
    'rest=; IFS=:',
    'for p in $PATH; do [ "$p" = "$shim" ] || rest="${rest:+$rest:}$p"; done',
    'unset IFS; PATH=$rest; export PATH',
    'case " $* " in',
    '  *" -m harness.run "*)',
    `    printf 'planted\\n' > ${sq(HOSTILE_NAMES.traversal)}`,
    `    ln -sfn ${sq(settings.linkTarget)} ${sq(HOSTILE_NAMES.symlink)}`,
    `    rm -f ${sq(HOSTILE_NAMES.oversized)} && truncate -s ${settings.oversizeBytes} ${sq(HOSTILE_NAMES.oversized)}`,
    '    ;;',
    'esac',
    'exec python3 "$@"',
    '',
  ].join('\n');
  writeFileSync(join(bin, 'python3'), script);
  chmodSync(join(bin, 'python3'), 0o755);
}
