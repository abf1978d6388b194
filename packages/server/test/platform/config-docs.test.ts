/**
 * docs/operations.md "Configuration" documents every server configuration key exactly as declared
 * (SERVER_CONFIG: environment variable, flag, default, meaning). On a mismatch the message shows
 * the table to paste (`serverConfigTable()`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serverConfigTable, serverConfigTableRows } from '../../src/config/docs-table.js';

const up = import.meta.url.endsWith('.ts') ? '../../../../' : '../../../../../';
const docs = readFileSync(fileURLToPath(new URL(`${up}docs/operations.md`, import.meta.url)), 'utf8');

function tableAfter(heading: string): string[][] {
  const section = docs.slice(docs.indexOf(heading));
  const lines = section.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| key'));
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim()),
    );
  }
  return rows;
}

void test('docs/operations.md lists every server configuration key as declared', () => {
  assert.deepEqual(
    tableAfter('## Configuration'),
    serverConfigTableRows(),
    `docs/operations.md "Configuration" should hold this table (then run prettier):\n${serverConfigTable()}`,
  );
});
