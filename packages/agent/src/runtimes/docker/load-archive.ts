/**
 * `docker load` of an image from a release tree (docs/containers.md "Image delivery"): the image
 * in docker-save format (config, layer tars, manifest.json) written straight into the engine's
 * request as it is read. The engine takes the archive at ~400 MB/s and extracts each layer once
 * it has it; its pull from the loopback registry reads a blob at ~100 MB/s (bench/README.md
 * "containers", 2026-12-07 07:00–), so this is the default delivery.
 *
 * The archive is written here rather than by tar-stream: its pack is a stream that keeps each
 * piece until the request reads it, with no point at which the piece is known to be written out,
 * and the layer's buffers are reused from that point (layer-stream.ts). The format needs only
 * regular files with short names (ustar headers; sizes of 8 GiB and more in base-256, as GNU tar
 * and Go's archive/tar read them).
 */
import { Readable } from 'node:stream';
import type { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { writeLayer, writeOut } from './layer-stream.js';
import type { TreeImage } from './tree-image.js';

const BLOCK = 512;
const ZEROS = Buffer.alloc(2 * BLOCK);

/** Writes `value` as `width - 1` octal digits and a NUL (base-256 where it does not fit). */
function number(header: Buffer, offset: number, width: number, value: number): void {
  if (value < 8 ** (width - 1)) {
    header.write(value.toString(8).padStart(width - 1, '0'), offset, 'ascii');
    header[offset + width - 1] = 0;
    return;
  }
  header[offset] = 0x80;
  let rest = BigInt(value);
  for (let i = offset + width - 1; i > offset; i--) {
    header[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
}

/** The ustar header of a regular file `name` (at most 100 ASCII bytes) of `size` bytes, mode 0644. */
export function tarHeader(name: string, size: number): Buffer {
  if (name.length > 100 || !/^[\x20-\x7e]+$/.test(name))
    throw new Error(`tar name "${name}" is not short ASCII`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 'ascii');
  number(header, 100, 8, 0o644);
  number(header, 108, 8, 0);
  number(header, 116, 8, 0);
  number(header, 124, 12, size);
  number(header, 136, 12, 0);
  header.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  header[156] = 0x30; // '0': a regular file
  header.write('ustar\u000000', 257, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0'), 148, 'ascii');
  header[154] = 0;
  header[155] = 0x20;
  return header;
}

/** The padding after `size` bytes of content, up to the next block. */
function padding(size: number): Buffer {
  return ZEROS.subarray(0, (BLOCK - (size % BLOCK)) % BLOCK);
}

/**
 * A request body that hands over the request itself: docker-modem pipes a body stream into its
 * request, and this one writes into the request directly (so each write's callback says when its
 * piece is out) instead of being read.
 */
class DirectBody extends Readable {
  constructor(private readonly onRequest: (request: Writable) => void) {
    super();
  }

  override _read(): void {
    // Nothing is ever pushed: the content is written to the request (pipe below).
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    this.onRequest(destination as unknown as Writable);
    return destination;
  }
}

/**
 * The archive's first entry, an empty file the load ignores (it reads what manifest.json names).
 * The engine starts the child that untars the archive only once the archive's first bytes are
 * there (it peeks at them for a compression), and that child takes 0.15–0.5 s to come up on a
 * busy 2-core machine: sent as the request opens, it has the child up before the layers come.
 */
const PRIMER_NAME = 'flotilla-load';
const PRIMER = tarHeader(PRIMER_NAME, 0);

/**
 * A `docker load` request, opened before its archive is written: the engine reads the archive
 * as it comes, and the request's first bytes (PRIMER) have it start its untar child at once, so a
 * request opened when an update begins has the engine ready by the time the fetch brings the
 * layers. Its owner either writes the rest of one archive into it (`loadImage`) or cuts it
 * (`abandon`): the engine then loads nothing.
 */
export class LoadRequest {
  /** The request to write the rest of the archive into, once docker-modem has made it and the primer is out. */
  readonly out: Promise<Writable>;
  /** The engine's answer (it comes once the whole archive is read, or at a failure). */
  readonly response: Promise<NodeJS.ReadableStream>;

  constructor(docker: Docker) {
    let take!: (out: Writable) => void;
    this.out = new Promise<Writable>((resolve) => (take = resolve)).then(async (out) => {
      await writeOut(out, PRIMER);
      return out;
    });
    // A primer the engine never took: the request failed, which `response` reports.
    this.out.catch(() => undefined);
    this.response = docker.loadImage(new DirectBody(take), { quiet: true });
    // Awaited by the load that writes into it; an abandoned one's failure is expected.
    this.response.catch(() => undefined);
  }

  /** Cuts the request, never written: the engine reads no archive and loads nothing. */
  abandon(): void {
    void this.out.then(
      (out) => out.destroy(),
      () => undefined,
    );
    void this.response.then(
      (res) => (res as unknown as { destroy?: () => void }).destroy?.(),
      () => undefined,
    );
  }
}

export interface LoadOptions {
  signal: AbortSignal;
  /** Bottom layers whose tars are left out (the engine has them). */
  skipBottom: number;
  /** Runs once the first layer tar begins. */
  onStreaming?: () => void;
  /** A request opened ahead (LoadRequest), this load's alone. */
  opened?: LoadRequest;
}

/**
 * Streams `image` in docker-save format into `docker load`, leaving out the tars of its
 * `skipBottom` bottom layers (the engine has them; it looks each layer up by its chain id and
 * reads a tar only when it lacks the layer). Each layer is hashed as it streams; a layer whose
 * content is not its diff id ends the request before its end (docker loads nothing) and is
 * FLT_HASH_MISMATCH. `onStreaming` runs once the first layer tar begins. `opened`: a request
 * opened ahead (LoadRequest), written into instead of a new one. Returns the id the engine says it
 * loaded (the caller checks the engine holds `image.id`).
 */
export async function loadImage(
  docker: Docker,
  image: TreeImage,
  ref: string,
  { signal, skipBottom, onStreaming, opened }: LoadOptions,
): Promise<string | null> {
  // An object, not a `let`: it is set inside `write`, which flow analysis does not follow.
  const state: { refused: FlotillaError | null } = { refused: null };
  const request = opened ?? new LoadRequest(docker);
  const write = async (out: Writable): Promise<void> => {
    const entry = async (name: string, bytes: Buffer): Promise<void> => {
      await writeOut(out, tarHeader(name, bytes.length));
      await writeOut(out, bytes);
      await writeOut(out, padding(bytes.length));
    };
    const configName = `${image.id.slice(7)}.json`;
    await entry(configName, image.config);
    const names: string[] = [];
    const sent = new Set<string>();
    for (const [i, layer] of image.layers.entries()) {
      signal.throwIfAborted();
      const name = `${layer.diffId.slice(7)}/layer.tar`;
      names.push(name);
      if (i < skipBottom || sent.has(name)) continue;
      if (sent.size === 0) onStreaming?.();
      sent.add(name);
      await writeOut(out, tarHeader(name, layer.size));
      const written = await writeLayer(layer, out, ref);
      if (!written.ok) {
        if (written.reason === 'mismatch') state.refused = written.error as FlotillaError;
        throw written.error;
      }
      await writeOut(out, padding(layer.size));
    }
    const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: null, Layers: names }]));
    await entry('manifest.json', manifest);
    await writeOut(out, ZEROS);
    await new Promise<void>((resolve) => out.end(resolve));
  };
  // An engine that fails before it reads (or is not there) answers without taking the request.
  const taken = Promise.race([request.out, request.response.then(() => null)]);
  const producing = taken.then(async (out) => {
    if (out === null) return;
    try {
      await write(out);
    } catch (error) {
      // The engine gets a cut archive and loads nothing from it.
      out.destroy(error as Error);
      throw error;
    }
  });
  // Awaited below, but it may fail while docker.loadImage is still pending: handled now, so that
  // the failure is never an unhandled rejection (which would end the agent's process).
  producing.catch(() => undefined);
  let loaded: string | null = null;
  try {
    const response = await request.response;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        response,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { stream?: string; error?: string }) => {
          const m = /Loaded image ID: (sha256:[a-f0-9]{64})/.exec(event.stream ?? '');
          if (m) loaded = m[1] as string;
        },
      );
    });
    await producing;
  } catch (error) {
    await producing.catch(() => undefined);
    if (state.refused) throw state.refused;
    if (isFlotillaError(error)) throw error;
    if (signal.aborted) throw signal.reason as Error;
    throw new FlotillaError(
      'FLT_ENGINE_UNAVAILABLE',
      `docker load of ${ref} failed: ${(error as Error).message ?? String(error)}`,
      { cause: error },
    );
  }
  if (state.refused) throw state.refused;
  return loaded;
}
