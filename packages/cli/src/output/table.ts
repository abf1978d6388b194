import Table from 'cli-table3';

/**
 * A borderless, kubectl-style table: columns separated by two spaces, a header row in bold on a
 * terminal and plain otherwise, so that the output greps and pipes cleanly.
 */
export function renderTable(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  color: boolean,
): string {
  const table = new Table({
    // Bold is written here rather than through cli-table3's style, whose color library turns
    // itself off whenever the process's stdout is not a terminal, whatever `color` says.
    head: head.map((h) => (color ? `\u001b[1m${h.toUpperCase()}\u001b[22m` : h.toUpperCase())),
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { 'padding-left': 0, 'padding-right': 0, head: [], border: [], compact: true },
  });
  table.push(...rows.map((r) => [...r]));
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
}

/** Two columns, for one record's fields (`devices show`, `whoami`). */
export function renderFields(fields: readonly (readonly [string, string])[], color: boolean): string {
  return renderTable(['field', 'value'], fields, color);
}
