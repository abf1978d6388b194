/**
 * A repository's trusted metadata kept in memory instead of in `<data-dir>/tuf/<name>/` (the fleet
 * simulator: thousands of devices in one process, each with its own trusted metadata, where the
 * files cost more CPU than the verification). tuf-js 5's Updater reads and writes its directory
 * through two private methods; `MemoryUpdater` replaces just those two, so the client workflow
 * (spec 5.3–5.6) and every check stay tuf-js's own. A real agent keeps files: they survive
 * restarts.
 */
import { Updater } from 'tuf-js';
import type { UpdaterOptions } from 'tuf-js';

/** The files of one repository's trusted metadata (`root.json`, `timestamp.json`, …), in memory. */
export class MemoryMetadata {
  readonly #files = new Map<string, Buffer>();

  has(name: string): boolean {
    return this.#files.has(name);
  }

  /** The file's bytes; throws an ENOENT error as a missing file would (tuf-js relies on that). */
  read(name: string): Buffer {
    const bytes = this.#files.get(name);
    if (bytes === undefined) throw missing(name);
    return bytes;
  }

  write(name: string, bytes: Uint8Array): void {
    this.#files.set(name, Buffer.from(bytes));
  }
}

/**
 * A missing file's error, without a stack trace: tuf-js reads `timestamp`, `snapshot` and `targets`
 * before each download and expects this on a device's first refresh (six per refresh of both
 * repositories), where capturing the stack costs more than reading the file.
 */
function missing(name: string): NodeJS.ErrnoException {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const error = new Error(`ENOENT: no such trusted metadata, '${name}'`) as NodeJS.ErrnoException;
    error.code = 'ENOENT';
    return error;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Where a repository's trusted metadata is: a directory, or memory. */
export type MetadataLocation = string | MemoryMetadata;

/** The bytes of `<kind>.json` at `location`. */
export function readTrusted(location: MemoryMetadata, kind: string): Buffer {
  return location.read(`${kind}.json`);
}

interface UpdaterFiles {
  loadLocalMetadata(fileName: string): Buffer;
  persistMetadata(metaDataName: string, bytesData: Buffer): void;
}

const base = Updater.prototype as unknown as Partial<UpdaterFiles>;
if (typeof base.loadLocalMetadata !== 'function' || typeof base.persistMetadata !== 'function')
  throw new Error(
    'tuf-js Updater no longer has loadLocalMetadata/persistMetadata: MemoryUpdater needs updating',
  );

/** The store of each MemoryUpdater; `constructing` covers the root read of tuf-js's constructor. */
const stores = new WeakMap<object, MemoryMetadata>();
let constructing: MemoryMetadata | undefined;

function storeOf(updater: object): MemoryMetadata {
  const store = stores.get(updater) ?? constructing;
  if (store === undefined) throw new Error('MemoryUpdater without its metadata');
  return store;
}

class MemoryUpdater extends Updater {}

const files: UpdaterFiles = {
  loadLocalMetadata(this: object, fileName: string): Buffer {
    return storeOf(this).read(`${fileName}.json`);
  },
  persistMetadata(this: object, metaDataName: string, bytesData: Buffer): void {
    storeOf(this).write(`${encodeURIComponent(metaDataName)}.json`, bytesData);
  },
};
Object.assign(MemoryUpdater.prototype, files);

/** A tuf-js Updater whose trusted metadata is `store`; `options.metadataDir` only names it. */
export function memoryUpdater(store: MemoryMetadata, options: UpdaterOptions): Updater {
  constructing = store;
  try {
    const updater = new MemoryUpdater(options);
    stores.set(updater, store);
    return updater;
  } finally {
    constructing = undefined;
  }
}
