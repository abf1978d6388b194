/**
 * The agent's loopback registry (docs/containers.md "Image delivery"): serves ONE verified image to
 * the Docker Engine over the distribution API on 127.0.0.1 (an ephemeral port; the engine treats
 * 127.0.0.0/8 registries as insecure, i.e. plain HTTP, by default), so that the engine pulls it:
 * each uncompressed layer is written once to a temporary file and extracted once, where
 * `docker load` untars the whole archive into a temporary directory first, then extracts again.
 *
 * A tiny GET/HEAD-only node:http server rather than a registry library: it serves one manifest it
 * generates, one config and the layer tars, read from the same sources `docker load` reads (tree
 * files, or the agent's cache whose pieces wait for chunks still arriving); each layer is hashed
 * while it streams and its last piece is held back until the hash is its diff id, so the engine
 * never receives a whole layer that is not what the signed config names (it checks each blob's
 * digest too). A random repository name per pull, pulled by its manifest's digest; anything else is 404.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { FlotillaError } from '@flotilla/protocol';
import { writeLayer } from './layer-stream.js';
import type { TreeImage, TreeLayer } from './tree-image.js';

/** For tests: replaces the answer to a request path (e.g. a manifest the engine refuses). */
export type RegistryAnswer = (path: string) => { status: number; type: string; body: string } | undefined;

export interface LoopbackRegistry {
  /**
   * `127.0.0.1:<port>/<random>/image@<manifest digest>`: the reference to pull, by digest (the engine
   * then neither resolves a tag with a HEAD request nor stores that answer first: 0.1–0.2 s).
   */
  readonly ref: string;
  /** How many blob GETs were answered with content (config and layers). */
  readonly blobsServed: number;
  /** The layer whose content was not its diff id, once one was found (the pull must then fail). */
  readonly refused: FlotillaError | null;
  /** A layer's source that failed while it was sent (e.g. the fetch bringing its chunks). */
  readonly sourceFailed: Error | null;
  close(): Promise<void>;
}

const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const CONFIG = 'application/vnd.docker.container.image.v1+json';
// Uncompressed: the blob digest is the diff id, and the engine extracts the tar as it is.
const LAYER = 'application/vnd.docker.image.rootfs.diff.tar';

/**
 * Starts serving `image` (its config verified, its layers open). `rereadable`: the layer files can
 * be read more than once (tree files on disk); the cache's pieces cannot, so a second GET of such a
 * layer (an engine retrying) is 404 and the pull fails. `onFailed` runs once a layer proves not to
 * be its diff id, or a layer's source fails (the caller aborts the pull).
 */
export async function serveImage(
  image: TreeImage,
  ref: string,
  options: {
    rereadable: boolean;
    onFailed: () => void;
    answer?: RegistryAnswer;
    /** Called once a layer's stream has begun (its first piece asked for). */
    onLayerRequested?: () => void;
  },
): Promise<LoopbackRegistry> {
  const repo = `flotilla-${randomBytes(12).toString('hex')}/image`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: CONFIG, size: image.config.length, digest: image.id },
      layers: image.layers.map((l) => ({ mediaType: LAYER, size: l.size, digest: l.diffId })),
    }),
  );
  const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  const layers = new Map(image.layers.map((l) => [l.diffId, l]));
  const taken = new Set<string>();
  const state = { served: 0, refused: null as FlotillaError | null, sourceFailed: null as Error | null };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0] as string;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) return end(res, 405);
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const override = options.answer?.(path);
    if (override) {
      res.setHeader('Content-Type', override.type);
      return end(res, override.status, head ? undefined : Buffer.from(override.body));
    }
    if (path === '/v2/' || path === '/v2') return end(res, 200, head ? undefined : Buffer.from('{}'));
    if (state.refused || state.sourceFailed) return end(res, 404);
    const prefix = `/v2/${repo}/`;
    if (!path.startsWith(prefix)) return end(res, 404);
    const [kind, name] = path.slice(prefix.length).split('/') as [string, string | undefined];
    if (kind === 'manifests' && (name === 'pull' || name === manifestDigest)) {
      res.setHeader('Content-Type', MANIFEST);
      res.setHeader('Docker-Content-Digest', manifestDigest);
      res.setHeader('Content-Length', manifest.length);
      return end(res, 200, head ? undefined : manifest);
    }
    if (kind !== 'blobs' || name === undefined) return end(res, 404);
    res.setHeader('Docker-Content-Digest', name);
    res.setHeader('Content-Type', 'application/octet-stream');
    if (name === image.id) {
      res.setHeader('Content-Length', image.config.length);
      if (!head) state.served++;
      return end(res, 200, head ? undefined : image.config);
    }
    const layer = layers.get(name);
    if (!layer) return end(res, 404);
    const start = rangeStart(req.headers.range, layer.size);
    if (start === null) return end(res, 416);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Length', layer.size - start);
    if (start > 0) res.setHeader('Content-Range', `bytes ${start}-${layer.size - 1}/${layer.size}`);
    if (head) return end(res, start > 0 ? 206 : 200);
    if (!options.rereadable && taken.has(name)) return end(res, 404);
    taken.add(name);
    state.served++;
    res.writeHead(start > 0 ? 206 : 200);
    const sending = sendLayer(layer, start, res, ref, (error) => {
      if (state.refused || state.sourceFailed) return;
      if (error instanceof FlotillaError && error.code === 'FLT_HASH_MISMATCH') state.refused = error;
      else state.sourceFailed = error;
      options.onFailed();
    });
    options.onLayerRequested?.();
    await sending;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    ref: `127.0.0.1:${port}/${repo}@${manifestDigest}`,
    get blobsServed() {
      return state.served;
    },
    get refused() {
      return state.refused;
    },
    get sourceFailed() {
      return state.sourceFailed;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function end(res: ServerResponse, status: number, body?: Buffer): void {
  res.statusCode = status;
  res.end(body);
}

/** The first byte a `Range: bytes=N-` asks for (0 without one); null for a range it cannot serve. */
function rangeStart(range: string | undefined, size: number): number | null {
  if (range === undefined) return 0;
  const m = /^bytes=(\d+)-(\d*)$/.exec(range.trim());
  if (!m) return null;
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) !== size - 1) return null;
  return start < size ? start : null;
}

/**
 * Streams the layer from `start` (writeLayer); a layer that is not its diff id, or whose source
 * fails, ends the response early (the connection destroyed) and `fail` gets the error. An engine
 * that closes the connection is no failure of ours (its pull reports it).
 */
async function sendLayer(
  layer: TreeLayer,
  start: number,
  res: ServerResponse,
  ref: string,
  fail: (error: Error) => void,
): Promise<void> {
  const written = await writeLayer(layer, res, ref, start);
  if (written.ok) res.end();
  else if (written.reason !== 'closed') {
    fail(written.error);
    res.destroy();
  }
}
