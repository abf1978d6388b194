/**
 * A release's file tree, read object by object through the public objects API
 * (`GET /api/v1/objects/:id`, docs/store.md "Objects"): the root directory object's id is the
 * release's `rootObject`; a directory is read when it is expanded, and the file objects it names
 * are read for their sizes. Every object arrives as a codec frame (8-byte header, then zstd, gzip
 * or raw bytes); it is decoded here and its SHA-256 checked against its id before it is believed.
 */
import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { decompress as zstdDecompress } from 'fzstd';
import { ApiError, path } from './api.js';
import { ErrorNote, formatBytes } from './ui.js';

export interface DirEntry {
  name: string;
  kind: 'file' | 'dir' | 'symlink';
  hash?: string;
  target?: string;
  mode?: number;
}
interface DirObject {
  type: 'dir';
  entries: DirEntry[];
}
interface FileObject {
  type: 'file';
  mode: number;
  size: number;
}

const MAX_DECODED = 64 * 1024 * 1024;

async function decodeFrame(frame: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  if (frame.length < 8 || frame[0] !== 0xf1 || frame[1] !== 0x0c || frame[2] !== 1)
    throw new Error('not an object frame');
  const codec = frame[3];
  const length = new DataView(frame.buffer, frame.byteOffset, 8).getUint32(4);
  if (length > MAX_DECODED) throw new Error('object larger than 64 MiB');
  const payload = frame.subarray(8);
  let out: Uint8Array<ArrayBuffer>;
  if (codec === 0) out = payload;
  else if (codec === 1) {
    out = new Uint8Array(length);
    if (zstdDecompress(payload, out).length !== length)
      throw new Error('object frame length does not match its content');
  } else if (codec === 3) {
    const s = new Blob([new Uint8Array(payload)]).stream().pipeThrough(new DecompressionStream('gzip'));
    out = new Uint8Array(await new Response(s).arrayBuffer());
  } else throw new Error(`codec ${String(codec)} cannot be decoded in the browser`);
  if (out.length !== length) throw new Error('object frame length does not match its content');
  return out;
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** One object, decoded and verified against its id. */
export async function readObject(id: string): Promise<unknown> {
  const res = await fetch(path('/api/v1/objects/:id', { id }), { credentials: 'same-origin' });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as {
      error?: { code?: string; message?: string };
    } | null;
    throw new ApiError(
      res.status,
      body?.error?.code ?? `HTTP_${res.status}`,
      body?.error?.message ?? `${res.status} ${res.statusText}`,
    );
  }
  const bytes = await decodeFrame(new Uint8Array(await res.arrayBuffer()));
  const digest = hex(await crypto.subtle.digest('SHA-256', bytes));
  if (digest !== id) throw new Error(`object ${id} does not match its hash`);
  return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
}

interface Listing {
  entries: DirEntry[];
  /** File sizes by entry name. */
  sizes: Map<string, number>;
}

async function readDir(id: string): Promise<Listing> {
  const dir = (await readObject(id)) as DirObject;
  if (dir.type !== 'dir' || !Array.isArray(dir.entries)) throw new Error(`object ${id} is not a directory`);
  const sizes = new Map<string, number>();
  const files = dir.entries.filter((e) => e.kind === 'file' && e.hash);
  // File objects are small (their chunk list); read a few at a time.
  for (let i = 0; i < files.length; i += 8) {
    await Promise.all(
      files.slice(i, i + 8).map(async (e) => {
        const f = (await readObject(e.hash ?? '')) as FileObject;
        if (f.type === 'file') sizes.set(e.name, f.size);
      }),
    );
  }
  return { entries: dir.entries, sizes };
}

function useDir(id: string) {
  return useQuery({ queryKey: ['object-dir', id], queryFn: () => readDir(id), staleTime: Infinity });
}

/**
 * The tree under `root` as nested lists; a directory is a button (Tab to it, Enter or Space expands
 * it, `aria-expanded` says whether it is open).
 */
export function FileTree({ root }: { root: string }) {
  return (
    <div className="tree">
      <DirListing id={root} depth={0} />
    </div>
  );
}

function DirListing({ id, depth }: { id: string; depth: number }) {
  const dir = useDir(id);
  if (dir.isPending) return <p className="muted">Loading…</p>;
  if (dir.isError) return <ErrorNote error={dir.error} />;
  const { entries, sizes } = dir.data;
  if (entries.length === 0) return <p className="muted">Empty directory.</p>;
  return (
    <ul className="plain" aria-label={depth === 0 ? 'Release files' : undefined}>
      {entries.map((e) =>
        e.kind === 'dir' && e.hash ? (
          <DirNode key={e.name} entry={e} hash={e.hash} depth={depth} />
        ) : (
          <li key={e.name}>
            <span className="tree-name">
              {e.kind === 'symlink' ? (
                <>
                  <code>{e.name}</code> → <code>{e.target}</code>
                </>
              ) : (
                <code>{e.name}</code>
              )}
            </span>{' '}
            <span className="tree-size">
              {e.kind === 'file' ? formatBytes(sizes.get(e.name)) : 'symlink'}
            </span>
          </li>
        ),
      )}
    </ul>
  );
}

function DirNode({ entry, hash, depth }: { entry: DirEntry; hash: string; depth: number }) {
  const [open, setOpen] = useState(false);
  return (
    <li>
      <button type="button" className="tree-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? '▾' : '▸'} <code>{entry.name}/</code>
      </button>
      {open ? <DirListing id={hash} depth={depth + 1} /> : null}
    </li>
  );
}
