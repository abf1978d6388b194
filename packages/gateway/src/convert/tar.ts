import { FlotillaError } from '@flotilla/protocol';

/**
 * A tar reader and writer for image layers (POSIX ustar + pax, GNU long names, base-256
 * numbers). Hand-written rather than a library's because xattr values in pax records are bytes,
 * not text (`security.capability` is binary), and both directions must keep them intact.
 */

export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of content (regular files); 0 for the others. */
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes (`SCHILY.xattr.<name>` pax records), values as bytes. */
  xattrs: Map<string, Buffer>;
}

const BLOCK = 512;
const MAX_PAX_BYTES = 1024 * 1024;
const MAX_LONG_NAME = 64 * 1024;

function invalid(message: string): FlotillaError {
  return new FlotillaError('FLT_LAYER_INVALID', message);
}

/** Reads exact byte counts from an async iterable of chunks. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    return true;
  }

  /** n bytes, or null at a clean end of input before the first byte. */
  async read(n: number): Promise<Buffer | null> {
    while (this.buf.length < n) {
      if (!(await this.more())) {
        if (this.buf.length === 0) return null;
        throw invalid('the tar archive is truncated');
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.more())) throw invalid('the tar archive is truncated');
      const take = Math.min(left, this.buf.length);
      const chunk = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
      yield chunk;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      // discarded
    }
  }
}

function cstring(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return (nul < 0 ? field : field.subarray(0, nul)).toString('utf8');
}

function numeric(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if (((field[0] as number) & 0x80) !== 0) {
    // GNU base-256: big-endian, the high bit of the first byte a marker (negative values refused).
    if (((field[0] as number) & 0x40) !== 0) throw invalid(`tar header: negative ${what}`);
    let value = (field[0] as number) & 0x3f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] as number);
    if (!Number.isSafeInteger(value)) throw invalid(`tar header: ${what} too large`);
    return value;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw invalid(`tar header: ${what} "${text}" is not an octal number`);
  return parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (block[i] as number);
  return sum === numeric(block, 148, 8, 'checksum');
}

/** Pax records (`<len> <key>=<value>\n`), values kept as bytes. */
function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number(data.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= space - pos || pos + len > data.length)
      throw invalid('tar: bad pax record');
    const record = data.subarray(space + 1, pos + len - 1); // without the trailing newline
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw invalid('tar: pax record without "="');
    out.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

const TYPES: Record<string, TarType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/**
 * The entries of a tar stream in order. Each entry's `body` must be read (or left) before the
 * next entry is asked for; what is left of it is skipped.
 */
export async function* readTar(
  source: AsyncIterable<Buffer>,
): AsyncGenerator<{ entry: TarEntry; body: AsyncIterable<Buffer> }> {
  const reader = new ByteReader(source);
  let pax = new Map<string, Buffer>();
  let globalPax = new Map<string, Buffer>();
  let longName: string | null = null;
  let longLink: string | null = null;
  for (;;) {
    const block = await reader.read(BLOCK);
    if (block === null) return; // some writers omit the two zero blocks at the end
    if (block.every((b) => b === 0)) return;
    if (!checksumOk(block)) throw invalid('tar header checksum mismatch (not a tar archive, or damaged)');
    const flag = String.fromCharCode(block[156] as number);
    const size = numeric(block, 124, 12, 'size');
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > (flag === 'x' || flag === 'g' ? MAX_PAX_BYTES : MAX_LONG_NAME))
        throw invalid(`tar: ${flag} header of ${size} bytes is too large`);
      const data = (await reader.read(padded)) ?? Buffer.alloc(0);
      const content = data.subarray(0, size);
      if (flag === 'x') pax = parsePax(content);
      else if (flag === 'g') globalPax = parsePax(content);
      else {
        const nul = content.indexOf(0);
        const text = (nul < 0 ? content : content.subarray(0, nul)).toString('utf8');
        if (flag === 'L') longName = text;
        else longLink = text;
      }
      continue;
    }
    const type = TYPES[flag];
    if (type === undefined) throw invalid(`tar: entry type "${flag}" is not supported`);
    const records = new Map([...globalPax, ...pax]);
    const ustar = block.subarray(257, 263).toString('latin1') === 'ustar\0';
    const prefix = ustar ? cstring(block, 345, 155) : '';
    let name = longName ?? (prefix ? `${prefix}/${cstring(block, 0, 100)}` : cstring(block, 0, 100));
    let linkname = longLink ?? cstring(block, 157, 100);
    const num = (key: string, fallback: number): number => {
      const v = records.get(key);
      if (v === undefined) return fallback;
      const n = Number(v.toString('latin1'));
      if (!Number.isSafeInteger(n) || n < 0)
        throw invalid(`tar: pax ${key} "${v.toString('latin1')}" is not a number`);
      return n;
    };
    if (records.has('path')) name = (records.get('path') as Buffer).toString('utf8');
    if (records.has('linkpath')) linkname = (records.get('linkpath') as Buffer).toString('utf8');
    const xattrs = new Map<string, Buffer>();
    for (const [key, value] of records) {
      if (key.startsWith('SCHILY.xattr.')) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    }
    const realSize = num('size', size);
    const entry: TarEntry = {
      name,
      type,
      mode: numeric(block, 100, 8, 'mode') & 0o7777,
      uid: num('uid', numeric(block, 108, 8, 'uid')),
      gid: num('gid', numeric(block, 116, 8, 'gid')),
      size: type === 'file' ? realSize : 0,
      linkname,
      devmajor: type === 'char' || type === 'block' ? numeric(block, 329, 8, 'devmajor') : 0,
      devminor: type === 'char' || type === 'block' ? numeric(block, 337, 8, 'devminor') : 0,
      xattrs,
    };
    pax = new Map();
    longName = null;
    longLink = null;
    const bodyBytes = realSize;
    let taken = 0;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of reader.stream(bodyBytes - taken)) {
          taken += chunk.length;
          yield chunk;
        }
      },
    };
    yield { entry, body };
    // What the consumer left of the body is skipped, keeping the reader on the next header.
    if (taken < bodyBytes) await reader.skip(bodyBytes - taken);
    const pad = Math.ceil(bodyBytes / BLOCK) * BLOCK - bodyBytes;
    if (pad > 0) await reader.skip(pad);
  }
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, '0') + '\0';
}

function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([
    Buffer.from(` ${key}=`),
    Buffer.isBuffer(value) ? value : Buffer.from(value),
    Buffer.from('\n'),
  ]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

const TYPE_FLAGS: Record<TarType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

function ustarHeader(
  name: string,
  type: string,
  e: Pick<TarEntry, 'mode' | 'uid' | 'gid' | 'size' | 'linkname' | 'devmajor' | 'devminor'>,
): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  block.write(octal(e.mode & 0o7777, 8), 100, 'latin1');
  block.write(octal(e.uid > MAX_OCTAL_7 ? 0 : e.uid, 8), 108, 'latin1');
  block.write(octal(e.gid > MAX_OCTAL_7 ? 0 : e.gid, 8), 116, 'latin1');
  block.write(octal(e.size > MAX_OCTAL_11 ? 0 : e.size, 12), 124, 'latin1');
  block.write(octal(0, 12), 136, 'latin1');
  block.write(type, 156, 'latin1');
  block.write(e.linkname, 157, 100, 'utf8');
  block.write('ustar\0' + '00', 257, 'latin1');
  block.write(octal(e.devmajor, 8), 329, 'latin1');
  block.write(octal(e.devminor, 8), 337, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return block;
}

/**
 * The header block(s) of one entry, with a pax header first when a name or link target is long
 * or not ASCII, a number is too large for ustar, or there are xattrs. Every time is 0.
 */
export function encodeHeader(e: TarEntry): Buffer {
  const records: Buffer[] = [];
  const ascii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);
  if (Buffer.byteLength(e.name) > 100 || !ascii(e.name)) records.push(paxRecord('path', e.name));
  if (Buffer.byteLength(e.linkname) > 100 || !ascii(e.linkname))
    records.push(paxRecord('linkpath', e.linkname));
  if (e.uid > MAX_OCTAL_7) records.push(paxRecord('uid', String(e.uid)));
  if (e.gid > MAX_OCTAL_7) records.push(paxRecord('gid', String(e.gid)));
  if (e.size > MAX_OCTAL_11) records.push(paxRecord('size', String(e.size)));
  for (const [key, value] of [...e.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    records.push(paxRecord(`SCHILY.xattr.${key}`, value));
  }
  const main = ustarHeader(truncate(e.name), TYPE_FLAGS[e.type], { ...e, linkname: truncate(e.linkname) });
  if (records.length === 0) return main;
  const data = Buffer.concat(records);
  const paxHeader = ustarHeader('PaxHeader', 'x', {
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, data, Buffer.alloc(padding(data.length)), main]);
}

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The end of an archive: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

function truncate(s: string): string {
  let out = s;
  while (Buffer.byteLength(out) > 100) out = out.slice(0, -1);
  return out;
}
