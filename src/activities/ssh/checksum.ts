import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** sha256 of a local file, streamed (model shards and results can be large). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolvePromise(h.digest('hex')));
  });
}
