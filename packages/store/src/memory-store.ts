import { FlotillaError } from '@flotilla/protocol';
import { assertContentId, verifyContentId } from './objects/ids.js';
import type { ObjectSink, StoreReader } from './store-api.js';

/**
 * An in-memory store (tests, tools, and small trees in a single process). Verifies the hash of
 * everything put into it; hands out copies so callers cannot change what it holds.
 */
export class MemoryStore implements ObjectSink, StoreReader {
  private readonly items = new Map<string, Buffer>();

  get size(): number {
    return this.items.size;
  }

  has(id: string): Promise<boolean> {
    assertContentId(id);
    return Promise.resolve(this.items.has(id));
  }

  putChunk(id: string, bytes: Uint8Array): Promise<void> {
    return this.put(id, bytes);
  }

  putObject(id: string, bytes: Uint8Array): Promise<void> {
    return this.put(id, bytes);
  }

  getChunk(id: string): Promise<Uint8Array> {
    return this.get(id);
  }

  getObject(id: string): Promise<Uint8Array> {
    return this.get(id);
  }

  ids(): string[] {
    return [...this.items.keys()];
  }

  private put(id: string, bytes: Uint8Array): Promise<void> {
    assertContentId(id);
    verifyContentId(id, bytes);
    if (!this.items.has(id)) this.items.set(id, Buffer.from(bytes));
    return Promise.resolve();
  }

  private get(id: string): Promise<Uint8Array> {
    assertContentId(id);
    const bytes = this.items.get(id);
    if (bytes === undefined)
      return Promise.reject(
        new FlotillaError('FLT_OBJECT_MISSING', `no object or chunk ${id}`, { details: { id } }),
      );
    return Promise.resolve(Buffer.from(bytes));
  }
}
