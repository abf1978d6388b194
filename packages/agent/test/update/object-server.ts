/**
 * A small HTTP server speaking the object contract (protocol `api/releases.ts`): the pack endpoint
 * (records compressed as a whole) and per-object frames with Range. It can cut connections after a
 * number of bytes, to test resumption, and counts what it sent.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { ObjectRoutes, PACK_CODEC_HEADER } from '@flotilla/protocol';
import type { DeltaPair } from '@flotilla/protocol';
import {
  DeltaKind,
  decodeFrame,
  deltaRecordBytes,
  encodeDelta,
  encodeFrame,
  parseFileObject,
  readFileContent,
  readFrameHeader,
} from '@flotilla/store';
import type { DeltaRecord, FsStore } from '@flotilla/store';
import { compress } from 'zstd-napi';

export interface ObjectServer {
  url: string;
  /** Wire bytes sent in bodies. */
  bytesSent: number;
  /** Ids asked for, per request kind. */
  packIds: string[];
  objectGets: string[];
  ranges: string[];
  /** Cut the next N responses after this many body bytes. */
  cut: { afterBytes: number; times: number } | null;
  /** Serve these ids with their first byte flipped (tampering), in packs and per-object frames. */
  tamper: Set<string>;
  packDisabled: boolean;
  /** Refuse the `frames` pack codec with a 400, as a server from before it does. */
  framesRefused: boolean;
  /** Pack codecs asked for, in order. */
  packCodecs: string[];
  /**
   * The deltas route: `off` answers 404 like an older server; `ok` makes real deltas; `none` declines
   * every pair; `garbage` sends bytes that are no zstd frame; `wrong` a valid delta of other content.
   */
  deltas: 'off' | 'ok' | 'none' | 'garbage' | 'wrong';
  deltaPairs: DeltaPair[];
  /** Awaited before a pack request is answered, with the ids it asks for. */
  beforePack: ((ids: readonly string[]) => Promise<void>) | null;
  close(): Promise<void>;
}

/**
 * An uncompressed pack (`[32-byte id][u32 BE length][bytes]` records, 32 zero bytes at the end) of
 * `ids` read from `store`; the first byte of each record `tamper` picks is flipped.
 */
export async function packRecords(
  store: FsStore,
  ids: readonly string[],
  tamper: (id: string) => boolean = () => false,
  frames = false,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const id of ids) {
    let bytes: Buffer;
    if (frames) {
      bytes = await store.getFrame(id);
      if (tamper(id)) bytes = tamperedFrame(bytes);
    } else {
      bytes = Buffer.from(await store.getObject(id));
      if (tamper(id)) bytes[0] = (bytes[0] ?? 0) ^ 0xff;
    }
    const header = Buffer.alloc(36);
    Buffer.from(id, 'hex').copy(header);
    header.writeUInt32BE(bytes.length, 32);
    parts.push(header, bytes);
  }
  parts.push(Buffer.alloc(32));
  return Buffer.concat(parts);
}

export async function startObjectServer(store: FsStore): Promise<ObjectServer> {
  const state: ObjectServer = {
    url: '',
    bytesSent: 0,
    packIds: [],
    objectGets: [],
    ranges: [],
    cut: null,
    tamper: new Set(),
    packDisabled: false,
    framesRefused: false,
    packCodecs: [],
    deltas: 'off',
    deltaPairs: [],
    beforePack: null,
    close: () => Promise.resolve(),
  };
  const deltaRecord = async ({ target, base }: DeltaPair): Promise<DeltaRecord> => {
    const none = { target, base, kind: DeltaKind.none, payload: Buffer.alloc(0) } as const;
    if (state.deltas === 'none') return none;
    if (state.deltas === 'garbage')
      return { target, base, kind: DeltaKind.zstd, payload: Buffer.from('not a zstd frame at all') };
    const targetFile = parseFileObject(await store.getObject(target), { expectedId: target });
    const baseFile = parseFileObject(await store.getObject(base), { expectedId: base });
    const baseContent = await readFileContent(store, baseFile);
    const content = await readFileContent(store, targetFile);
    if (state.deltas === 'wrong' && content.length > 0) content[0] = (content[0] ?? 0) ^ 0xff;
    return { target, base, kind: DeltaKind.zstd, payload: encodeDelta(baseContent, content) };
  };
  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body: Buffer) => {
    res.writeHead(status, { ...headers, 'content-length': String(body.length) });
    const cut = state.cut;
    if (cut && cut.times > 0 && body.length > cut.afterBytes) {
      cut.times -= 1;
      state.bytesSent += cut.afterBytes;
      res.write(body.subarray(0, cut.afterBytes), () => res.socket?.destroy());
      return;
    }
    state.bytesSent += body.length;
    res.end(body);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === ObjectRoutes.pack) {
      if (state.packDisabled) return send(res, 404, {}, Buffer.from('{}'));
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const { ids, codec } = JSON.parse(Buffer.concat(chunks).toString()) as {
        ids: string[];
        codec?: string;
      };
      state.packIds.push(...ids);
      state.packCodecs.push(codec ?? '');
      if (codec === 'frames' && state.framesRefused) {
        const error = { error: { code: 'FLT_VALIDATION', message: 'body/codec must be equal to constant' } };
        return send(res, 400, {}, Buffer.from(JSON.stringify(error)));
      }
      await state.beforePack?.(ids);
      const lacking = await store.missing(ids);
      if (lacking.length > 0) {
        const error = {
          error: { code: 'FLT_OBJECT_MISSING', message: 'not stored', details: { missing: lacking } },
        };
        return send(res, 404, {}, Buffer.from(JSON.stringify(error)));
      }
      const raw = await packRecords(store, ids, (id) => state.tamper.has(id), codec === 'frames');
      const chosen = codec === 'gzip' || codec === 'identity' || codec === 'frames' ? codec : 'zstd';
      const body = chosen === 'gzip' ? gzipSync(raw) : chosen === 'zstd' ? compress(raw) : raw;
      return send(res, 200, { [PACK_CODEC_HEADER]: chosen }, body);
    }
    if (req.method === 'POST' && url.pathname === ObjectRoutes.deltas) {
      if (state.deltas === 'off') return send(res, 404, {}, Buffer.from('{}'));
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const { pairs } = JSON.parse(Buffer.concat(chunks).toString()) as { pairs: DeltaPair[] };
      state.deltaPairs.push(...pairs);
      const parts: Buffer[] = [];
      for (const pair of pairs) parts.push(...deltaRecordBytes(await deltaRecord(pair)));
      parts.push(Buffer.alloc(32));
      return send(res, 200, {}, Buffer.concat(parts));
    }
    const match = /^\/api\/v1\/objects\/([0-9a-f]{64})$/.exec(url.pathname);
    if (req.method === 'GET' && match) {
      const id = match[1] as string;
      state.objectGets.push(id);
      let frame: Buffer;
      try {
        frame = await store.getFrame(id);
      } catch {
        return send(res, 404, {}, Buffer.from('{"error":{"code":"FLT_OBJECT_MISSING","message":"no"}}'));
      }
      if (state.tamper.has(id)) frame = tamperedFrame(frame);
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (range) {
        state.ranges.push(`${id}:${range[1]}`);
        const start = Number(range[1]);
        if (start >= frame.length) return send(res, 416, {}, Buffer.alloc(0));
        return send(
          res,
          206,
          { 'content-range': `bytes ${start}-${frame.length - 1}/${frame.length}` },
          frame.subarray(start),
        );
      }
      return send(res, 200, {}, frame);
    }
    send(res, 404, {}, Buffer.from('{}'));
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** `frame` re-encoded (same codec) around its content with the first byte flipped: it decodes, to other bytes. */
export function tamperedFrame(frame: Buffer): Buffer {
  const { codec } = readFrameHeader(frame);
  const content = decodeFrame(frame);
  content[0] = (content[0] ?? 0) ^ 0xff;
  return encodeFrame(content, { codec });
}
