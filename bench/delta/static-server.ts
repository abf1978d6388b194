/**
 * A static file server on 127.0.0.1 that counts the body bytes it sends, so that an OSTree pull or a
 * static-delta download is measured the same way as Flotilla's pack responses.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

export interface CountingServer {
  url: string;
  /** Body bytes sent and requests answered since the last reset. */
  counters(): { bytes: number; requests: number };
  reset(): void;
  close(): Promise<void>;
}

export async function serveDirectory(root: string): Promise<CountingServer> {
  let bytes = 0;
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    let path: string;
    try {
      // normalize() of an absolute path cannot climb above `/`, so the file stays under root.
      path = normalize(`/${decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)}`);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = join(root, path);
    stat(file).then(
      (st) => {
        if (!st.isFile()) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
        const stream = createReadStream(file);
        stream.on('data', (chunk) => {
          bytes += chunk.length;
        });
        stream.pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counters: () => ({ bytes, requests }),
    reset: () => {
      bytes = 0;
      requests = 0;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
