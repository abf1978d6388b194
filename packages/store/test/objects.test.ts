import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { canonicalJson, contentId, encodeObject, parseObject } from '../src/index.js';
import type { DirObject, FileObject, TreeObject } from '../src/index.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

const file: FileObject = {
  type: 'file',
  mode: 0o644,
  size: 30,
  chunks: [
    { id: A, size: 10 },
    { id: B, size: 20 },
  ],
};

const dir: DirObject = {
  type: 'dir',
  entries: [
    { name: 'bin', kind: 'dir', hash: C, mode: 0o755 },
    { name: 'lib', kind: 'symlink', target: 'usr/lib' },
    { name: 'readme', kind: 'file', hash: A },
  ],
};

function raw(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

function canonical(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value as never), 'utf8');
}

function refusal(code: string) {
  return (e: unknown) => e instanceof FlotillaError && e.code === code;
}

void describe('canonical encoding', () => {
  void it('is stable: sorted keys, no whitespace, fixed bytes and id', () => {
    const encoded = encodeObject(file);
    assert.equal(
      encoded.bytes.toString('utf8'),
      `{"chunks":[{"id":"${A}","size":10},{"id":"${B}","size":20}],"mode":420,"size":30,"type":"file"}`,
    );
    assert.equal(encoded.id, contentId(encoded.bytes));
    const reordered = { chunks: file.chunks, size: 30, type: 'file', mode: 0o644 } as FileObject;
    assert.equal(encodeObject(reordered).id, encoded.id);
    assert.equal(
      encodeObject(dir).bytes.toString('utf8'),
      `{"entries":[{"hash":"${C}","kind":"dir","mode":493,"name":"bin"},` +
        `{"kind":"symlink","name":"lib","target":"usr/lib"},{"hash":"${A}","kind":"file","name":"readme"}],"type":"dir"}`,
    );
  });

  void it('round trips through parseObject', () => {
    for (const object of [file, dir] as TreeObject[]) {
      const { id, bytes } = encodeObject(object);
      assert.deepEqual(parseObject(bytes, { expectedId: id }), object);
    }
  });

  void it('changes the id when any field changes', () => {
    const base = encodeObject(file).id;
    const variants: FileObject[] = [
      { ...file, mode: 0o755 },
      { ...file, size: 31, chunks: [file.chunks[0]!, { id: B, size: 21 }] },
      { ...file, chunks: [{ id: C, size: 10 }, file.chunks[1]!] },
      { ...file, chunks: [file.chunks[1]!, file.chunks[0]!] },
    ];
    const ids = new Set([base, ...variants.map((v) => encodeObject(v).id)]);
    assert.equal(ids.size, variants.length + 1);
    const dirBase = encodeObject(dir).id;
    const dirVariants: DirObject[] = [
      { type: 'dir', entries: [{ ...dir.entries[0]!, mode: 0o700 }, dir.entries[1]!, dir.entries[2]!] },
      { type: 'dir', entries: [{ ...dir.entries[0]!, hash: B }, dir.entries[1]!, dir.entries[2]!] },
      { type: 'dir', entries: [{ ...dir.entries[0]!, name: 'bin2' }, dir.entries[1]!, dir.entries[2]!] },
      {
        type: 'dir',
        entries: [dir.entries[0]!, { ...dir.entries[1]!, target: 'usr/lib64' }, dir.entries[2]!],
      },
      { type: 'dir', entries: [dir.entries[0]!, dir.entries[1]!, { ...dir.entries[2]!, hash: B }] },
      { type: 'dir', entries: [dir.entries[0]!, dir.entries[1]!] },
    ];
    const dirIds = new Set([dirBase, ...dirVariants.map((v) => encodeObject(v).id)]);
    assert.equal(dirIds.size, dirVariants.length + 1);
  });

  void it('sorts names by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF5E (3 UTF-8 bytes EF BD 9E) sorts before U+1F600 (F0 ...) by bytes, after it by UTF-16.
    const entries = [
      { name: '\uff5e', kind: 'file' as const, hash: A },
      { name: '\u{1f600}', kind: 'file' as const, hash: A },
    ];
    assert.doesNotThrow(() => encodeObject({ type: 'dir', entries }));
    assert.throws(
      () => encodeObject({ type: 'dir', entries: [entries[1]!, entries[0]!] }),
      refusal('FLT_MANIFEST_INVALID'),
    );
  });
});

void describe('parseObject refuses', () => {
  const fileJson = { type: 'file', mode: 420, size: 10, chunks: [{ id: A, size: 10 }] };
  const entry = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    kind: 'file',
    hash: A,
    ...extra,
  });

  const cases: [string, Buffer, string][] = [
    ['non-canonical whitespace', Buffer.from(JSON.stringify(fileJson, null, 1)), 'FLT_MANIFEST_INVALID'],
    ['non-canonical key order', raw(fileJson), 'FLT_MANIFEST_INVALID'],
    [
      'duplicate JSON keys',
      Buffer.from(`{"chunks":[],"mode":420,"mode":420,"size":0,"type":"file"}`),
      'FLT_MANIFEST_INVALID',
    ],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), 'FLT_MANIFEST_INVALID'],
    ['not JSON', Buffer.from('nope'), 'FLT_MANIFEST_INVALID'],
    ['a JSON array', Buffer.from('[]'), 'FLT_MANIFEST_INVALID'],
    ['an unknown type', canonical({ type: 'blob' }), 'FLT_MANIFEST_INVALID'],
    ['unknown fields', canonical({ ...fileJson, owner: 'root' }), 'FLT_MANIFEST_INVALID'],
    ['size not matching the chunks', canonical({ ...fileJson, size: 11 }), 'FLT_MANIFEST_INVALID'],
    [
      'a bad chunk id',
      canonical({ ...fileJson, chunks: [{ id: 'A'.repeat(64), size: 10 }] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'an empty chunk',
      canonical({ ...fileJson, size: 0, chunks: [{ id: A, size: 0 }] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'a negative size',
      Buffer.from(`{"chunks":[],"mode":420,"size":-1,"type":"file"}`),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'a fractional mode',
      Buffer.from(`{"chunks":[],"mode":420.5,"size":0,"type":"file"}`),
      'FLT_MANIFEST_INVALID',
    ],
    ['mode bits beyond 07777', canonical({ ...fileJson, mode: 0o10644 }), 'FLT_MANIFEST_INVALID'],
    ['a setuid mode', canonical({ ...fileJson, mode: 0o4755 }), 'FLT_MODE_UNSAFE'],
    ['a setgid mode', canonical({ ...fileJson, mode: 0o2755 }), 'FLT_MODE_UNSAFE'],
    [
      'a sticky directory',
      canonical({ type: 'dir', entries: [{ name: 't', kind: 'dir', hash: A, mode: 0o1777 }] }),
      'FLT_MODE_UNSAFE',
    ],
    ['a name ".."', canonical({ type: 'dir', entries: [entry('..')] }), 'FLT_PATH_UNSAFE'],
    ['a name "."', canonical({ type: 'dir', entries: [entry('.')] }), 'FLT_PATH_UNSAFE'],
    ['a name with "/"', canonical({ type: 'dir', entries: [entry('a/b')] }), 'FLT_PATH_UNSAFE'],
    ['a name with NUL', canonical({ type: 'dir', entries: [entry('a\0b')] }), 'FLT_PATH_UNSAFE'],
    ['an empty name', canonical({ type: 'dir', entries: [entry('')] }), 'FLT_PATH_UNSAFE'],
    [
      'a name over 255 bytes',
      canonical({ type: 'dir', entries: [entry('é'.repeat(128))] }),
      'FLT_PATH_UNSAFE',
    ],
    [
      'a lone surrogate in a name',
      canonical({ type: 'dir', entries: [entry('a\ud800')] }),
      'FLT_PATH_UNSAFE',
    ],
    [
      'duplicate names',
      canonical({ type: 'dir', entries: [entry('a'), entry('a')] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'unsorted entries',
      canonical({ type: 'dir', entries: [entry('b'), entry('a')] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'an unknown kind',
      canonical({ type: 'dir', entries: [{ name: 'a', kind: 'fifo' }] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'a file entry without hash',
      canonical({ type: 'dir', entries: [{ name: 'a', kind: 'file' }] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'a dir entry without mode',
      canonical({ type: 'dir', entries: [{ name: 'a', kind: 'dir', hash: A }] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'a file entry with a mode',
      canonical({ type: 'dir', entries: [entry('a', { mode: 420 })] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'a symlink with a hash',
      canonical({ type: 'dir', entries: [{ name: 'l', kind: 'symlink', target: 'x', hash: A }] }),
      'FLT_MANIFEST_INVALID',
    ],
    [
      'an absolute symlink',
      canonical({ type: 'dir', entries: [{ name: 'l', kind: 'symlink', target: '/etc/passwd' }] }),
      'FLT_PATH_UNSAFE',
    ],
    [
      'an empty symlink target',
      canonical({ type: 'dir', entries: [{ name: 'l', kind: 'symlink', target: '' }] }),
      'FLT_PATH_UNSAFE',
    ],
    [
      'a symlink climbing through another name (l/../..)',
      canonical({ type: 'dir', entries: [{ name: 'm', kind: 'symlink', target: 'l/../../x' }] }),
      'FLT_PATH_UNSAFE',
    ],
    [
      'a symlink with an empty component',
      canonical({ type: 'dir', entries: [{ name: 'l', kind: 'symlink', target: 'a//b' }] }),
      'FLT_PATH_UNSAFE',
    ],
    [
      'a symlink target with NUL',
      canonical({ type: 'dir', entries: [{ name: 'l', kind: 'symlink', target: 'a\0' }] }),
      'FLT_PATH_UNSAFE',
    ],
  ];

  for (const [what, bytes, code] of cases) {
    void it(what, () => {
      assert.throws(() => parseObject(bytes), refusal(code));
    });
  }

  void it('bytes that do not hash to the expected id (FLT_HASH_MISMATCH)', () => {
    const { bytes } = encodeObject(file);
    assert.throws(() => parseObject(bytes, { expectedId: B }), refusal('FLT_HASH_MISMATCH'));
  });

  void it('objects, directories and files beyond the limits (FLT_LIMIT_EXCEEDED)', () => {
    const { bytes } = encodeObject(dir);
    assert.throws(
      () => parseObject(bytes, { limits: { maxObjectBytes: bytes.length - 1 } }),
      refusal('FLT_LIMIT_EXCEEDED'),
    );
    assert.throws(
      () => parseObject(bytes, { limits: { maxEntriesPerDir: 2 } }),
      refusal('FLT_LIMIT_EXCEEDED'),
    );
    const fileBytes = encodeObject(file).bytes;
    assert.throws(
      () => parseObject(fileBytes, { limits: { maxFileSize: 29 } }),
      refusal('FLT_LIMIT_EXCEEDED'),
    );
    assert.throws(
      () => parseObject(fileBytes, { limits: { maxChunksPerFile: 1 } }),
      refusal('FLT_LIMIT_EXCEEDED'),
    );
    assert.throws(
      () => parseObject(fileBytes, { limits: { maxChunkSize: 19 } }),
      refusal('FLT_LIMIT_EXCEEDED'),
    );
  });

  void it('accepts special modes only when allowed', () => {
    const bytes = canonical({ type: 'file', mode: 0o4755, size: 0, chunks: [] });
    assert.equal((parseObject(bytes, { limits: { allowSpecialModes: true } }) as FileObject).mode, 0o4755);
  });

  void it('accepts relative symlinks with leading ".." and "." components', () => {
    const bytes = canonical({
      type: 'dir',
      entries: [
        { name: 'a', kind: 'symlink', target: '../../lib/x' },
        { name: 'b', kind: 'symlink', target: './x/./y' },
      ],
    });
    assert.equal(parseObject(bytes).type, 'dir');
  });

  void it('encodeObject refuses what parseObject refuses, so invalid objects are never written', () => {
    assert.throws(
      () => encodeObject({ type: 'dir', entries: [entry('..')] } as DirObject),
      refusal('FLT_PATH_UNSAFE'),
    );
    assert.throws(() => encodeObject({ ...file, mode: 0o4755 }), refusal('FLT_MODE_UNSAFE'));
  });
});
