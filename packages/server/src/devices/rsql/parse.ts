/**
 * RSQL text → a small normalized tree. Parsing is @rsql/parser's; this file maps its AST to our
 * operators, flattens `a;b;c` chains (so SQL nesting follows the filter's real depth, not its length)
 * and bounds the size of what reaches the database.
 */
import { parse } from '@rsql/parser';
import type { ExpressionNode } from '@rsql/ast';
import { FlotillaError, LIMITS } from '@flotilla/protocol';

export type FilterOperator = 'eq' | 'ne' | 'in' | 'out' | 'lt' | 'le' | 'gt' | 'ge';

export type FilterNode =
  | { kind: 'and' | 'or'; children: FilterNode[] }
  | { kind: 'cmp'; selector: string; op: FilterOperator; values: string[] };

/** Bounds that keep a filter's SQL within both databases' expression limits. */
export const FILTER_LIMITS = { comparisons: 100, depth: 16, values: 1000 } as const;

const OPERATORS: Record<string, FilterOperator> = {
  '==': 'eq',
  '!=': 'ne',
  '=in=': 'in',
  '=out=': 'out',
  '=lt=': 'lt',
  '<': 'lt',
  '=le=': 'le',
  '<=': 'le',
  '=gt=': 'gt',
  '>': 'gt',
  '=ge=': 'ge',
  '>=': 'ge',
};

export function filterError(reason: string, details: Record<string, unknown> = {}): FlotillaError {
  return new FlotillaError('FLT_FILTER_INVALID', `invalid filter: ${reason}`, {
    details: { reason, ...details },
  });
}

/** Parses an RSQL filter; throws FLT_FILTER_INVALID with `details.position` (1-based) when known. */
export function parseFilter(text: string): FilterNode {
  if (text.length > LIMITS.filterChars) throw filterError(`longer than ${LIMITS.filterChars} characters`);
  const nul = text.indexOf('\u0000');
  if (nul >= 0) throw filterError('NUL characters are not allowed', { position: nul + 1 });
  let ast: ExpressionNode;
  try {
    ast = parse(text);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const at = /at position (\d+)/.exec(message);
    const position = at ? Number(at[1]) : message.startsWith('Unexpected end') ? text.length + 1 : undefined;
    throw filterError(message, position === undefined ? {} : { position });
  }
  const counts = { comparisons: 0, values: 0 };
  const node = normalize(ast, counts);
  if (counts.comparisons > FILTER_LIMITS.comparisons) {
    throw filterError(`more than ${FILTER_LIMITS.comparisons} comparisons`);
  }
  if (counts.values > FILTER_LIMITS.values) throw filterError(`more than ${FILTER_LIMITS.values} values`);
  if (depthOf(node) > FILTER_LIMITS.depth)
    throw filterError(`nested deeper than ${FILTER_LIMITS.depth} levels`);
  return node;
}

function normalize(node: ExpressionNode, counts: { comparisons: number; values: number }): FilterNode {
  if (node.type === 'COMPARISON') {
    const op = OPERATORS[node.operator];
    const selector = node.left.selector;
    if (op === undefined) throw filterError(`unknown operator "${node.operator}"`, { selector });
    const raw = node.right.value;
    const multi = op === 'in' || op === 'out';
    if (!multi && Array.isArray(raw))
      throw filterError(`operator "${node.operator}" takes one value`, { selector });
    const values = Array.isArray(raw) ? raw : [raw];
    counts.comparisons += 1;
    counts.values += values.length;
    return { kind: 'cmp', selector, op, values };
  }
  const kind = node.operator === ';' || node.operator === 'and' ? 'and' : 'or';
  const children: FilterNode[] = [];
  for (const side of [node.left, node.right]) {
    const child = normalize(side, counts);
    if (child.kind === kind) children.push(...child.children);
    else children.push(child);
  }
  return { kind, children };
}

function depthOf(node: FilterNode): number {
  if (node.kind === 'cmp') return 1;
  return 1 + Math.max(...node.children.map(depthOf));
}
