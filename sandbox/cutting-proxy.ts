// A loopback TCP proxy that cuts the connections through it on a byte schedule: network drops for tests that land at
// the same place in the byte stream however loaded the machine is (a timer-driven cut does not).
import { connect, createServer, type Socket } from 'node:net';

export interface CuttingProxyOptions {
  /** Where each connection is forwarded (a pod's sshd). */
  target: { host: string; port: number };
  /**
   * How many bytes connection `index` (0-based, in the order accepted) carries, both directions together, before it
   * is cut; null lets it through uncut. E.g. `(i) => (i < 7 ? 64_000 : null)`: seven cuts, then a clean network.
   */
  cutAfterBytes: (index: number) => number | null;
  /** Called as connection `index` is cut, before either end sees it. */
  onCut?: (index: number) => void;
}

export interface CuttingProxy {
  /** Connect here instead of the target (`127.0.0.1`). */
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Stops listening and closes every connection still open. */
  close(): Promise<void>;
}

/** Starts the proxy on a free loopback port. */
export async function startCuttingProxy(opts: CuttingProxyOptions): Promise<CuttingProxy> {
  const open = new Set<Socket>();
  let connections = 0;
  let cuts = 0;
  const server = createServer((client) => {
    const index = connections++;
    const limit = opts.cutAfterBytes(index);
    const upstream = connect(opts.target.port, opts.target.host);
    let carried = 0;
    let cut = false;
    const pair = [client, upstream] as const;
    for (const s of pair) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        // Either end going away takes the other with it, as it would through a real network path.
        if (!cut) pair.forEach((o) => o.destroy());
      });
    }
    const forward = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (cut) return;
        if (limit !== null && carried + chunk.length >= limit) {
          // Exactly `limit` bytes get through, however the stream was chunked; then both ends are closed.
          cut = true;
          cuts += 1;
          opts.onCut?.(index);
          // What the other direction had queued for `from` dies with it: a drop loses data in flight both ways.
          from.destroy();
          to.end(chunk.subarray(0, limit - carried), () => to.destroy());
          return;
        }
        carried += chunk.length;
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('cutting proxy: no TCP address');
  return {
    host: '127.0.0.1',
    port: address.port,
    get connections() {
      return connections;
    },
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
