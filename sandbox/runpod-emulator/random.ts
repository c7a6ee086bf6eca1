// Pod ids, hex suffixes and port numbers: Math.random and crypto, or one seeded PRNG when the emulator has a seed.
import { randomBytes } from 'node:crypto';

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export class Randomness {
  readonly #seeded: boolean;
  readonly #next: () => number;

  constructor(seed: number | undefined) {
    this.#seeded = seed !== undefined;
    this.#next = seed === undefined ? Math.random : mulberry32(seed);
  }

  /** A 14-character pod id that `taken` does not know. */
  podId(taken: (id: string) => boolean): string {
    for (;;) {
      let id = '';
      for (let i = 0; i < 14; i++) id += ID_ALPHABET[Math.floor(this.#next() * ID_ALPHABET.length)];
      if (!taken(id)) return id;
    }
  }

  /** `n` hex digits. */
  hex(n: number): string {
    if (!this.#seeded)
      return randomBytes(Math.ceil(n / 2))
        .toString('hex')
        .slice(0, n);
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(this.#next() * 16).toString(16);
    return s;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }
}

/** Small seedable PRNG for ids and ports when a seed is given (and the chaos run's seeds). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
