/**
 * Filter tree → one Kysely boolean expression over `devices` (never filtering in JS). Tags and facts
 * become EXISTS subqueries on device_tags / device_facts, which use their (tag, device_id) and
 * (name, value_text) indexes. Negations (`!=`, `=out=`) mean "has no matching row", so they also
 * select devices that lack the tag or fact altogether.
 */
import { expressionBuilder, sql } from 'kysely';
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import { NAME_PATTERN } from '@flotilla/protocol';
import type { Dialect } from '../../db/dialect.js';
import type { Database } from '../../db/schema.js';
import { filterError, parseFilter } from './parse.js';
import type { FilterNode, FilterOperator } from './parse.js';
import { compare, textMatches } from './sql-text.js';
import type { RangeOperator } from './sql-text.js';
import { booleanValue, numericValue, oneOf, timestampValue } from './values.js';

export type DevicesEb = ExpressionBuilder<Database, 'devices'>;

export interface FilterContext {
  dialect: Dialect;
  now: Date;
  /** A device seen within this many ms is online. */
  offlineAfterMs: number;
  /** Devices known online on this server (open WebSocket, or seen but not yet flushed to the DB). */
  onlineIds: readonly string[];
}

const STATUSES = ['pending', 'accepted', 'rejected', 'revoked'] as const;
const RANGE: Partial<Record<FilterOperator, RangeOperator>> = { lt: '<', le: '<=', gt: '>', ge: '>=' };
const FACT_NAME = new RegExp(NAME_PATTERN);

/** Column selectors and the device column they read. */
const TEXT_COLUMNS = {
  id: 'devices.id',
  hostname: 'devices.hostname',
  registrationKeyId: 'devices.registration_key_id',
  agentVersion: 'devices.agent_version',
} as const;
const TIME_COLUMNS = { lastSeenAt: 'devices.last_seen_at', enrolledAt: 'devices.enrolled_at' } as const;

/** The selectors a filter may name besides facts (for docs and error messages). */
export const FILTER_SELECTORS = [
  ...Object.keys(TEXT_COLUMNS),
  ...Object.keys(TIME_COLUMNS),
  'status',
  'online',
  'tags',
  'tag',
  'facts.<name>',
  '<fact name>',
] as const;

/** Parses and translates `text` into a WHERE expression on `devices`; throws FLT_FILTER_INVALID. */
export function compileFilter(text: string, ctx: FilterContext): Expression<SqlBool> {
  return new Translator(ctx).node(expressionBuilder<Database, 'devices'>(), parseFilter(text));
}

class Translator {
  constructor(private readonly ctx: FilterContext) {}

  node(eb: DevicesEb, node: FilterNode): Expression<SqlBool> {
    if (node.kind !== 'cmp') {
      const children = node.children.map((c) => this.node(eb, c));
      return node.kind === 'and' ? eb.and(children) : eb.or(children);
    }
    return this.comparison(eb, node.selector, node.op, node.values);
  }

  private comparison(
    eb: DevicesEb,
    selector: string,
    op: FilterOperator,
    values: string[],
  ): Expression<SqlBool> {
    if (selector in TEXT_COLUMNS) {
      return this.nullableText(eb, TEXT_COLUMNS[selector as keyof typeof TEXT_COLUMNS], selector, op, values);
    }
    if (selector in TIME_COLUMNS) {
      const stamps = values.map((v) => timestampValue(selector, v, this.ctx.now));
      return this.nullableText(
        eb,
        TIME_COLUMNS[selector as keyof typeof TIME_COLUMNS],
        selector,
        op,
        stamps,
        true,
      );
    }
    if (selector === 'status') {
      if (RANGE[op]) throw filterError(`status takes ==, !=, =in= or =out=`, { selector });
      values.forEach((v) => oneOf(selector, v, STATUSES));
      return this.nullableText(eb, 'devices.status', selector, op, values);
    }
    if (selector === 'online') return this.online(eb, op, values);
    if (selector === 'tags' || selector === 'tag') return this.tags(eb, op, values);
    const fact = selector.startsWith('facts.') ? selector.slice('facts.'.length) : selector;
    if (!FACT_NAME.test(fact)) {
      throw filterError(`unknown selector "${selector}" (use ${FILTER_SELECTORS.join(', ')})`, { selector });
    }
    return this.fact(eb, fact, selector, op, values);
  }

  /** A column that may be NULL: NULL never equals anything, so `!=`/`=out=` include it. */
  private nullableText(
    eb: DevicesEb,
    column: string,
    selector: string,
    op: FilterOperator,
    values: string[],
    exact = false,
  ): Expression<SqlBool> {
    const ref = sql.ref(column);
    const range = RANGE[op];
    if (range) return compare(this.ctx.dialect, ref, range, values[0] ?? '');
    const any = (): Expression<SqlBool> =>
      eb.or(values.map((v) => (exact ? sql<SqlBool>`${ref} = ${v}` : textMatches(this.ctx.dialect, ref, v))));
    if (op === 'eq' || op === 'in') return any();
    if (op === 'ne' || op === 'out') return eb.or([eb(sql.ref(column), 'is', null), eb.not(any())]);
    throw filterError(`operator not supported on ${selector}`, { selector });
  }

  private online(eb: DevicesEb, op: FilterOperator, values: string[]): Expression<SqlBool> {
    if (op !== 'eq' && op !== 'ne') throw filterError('online takes == or !=', { selector: 'online' });
    const wanted = booleanValue('online', values[0] ?? '') === (op === 'eq');
    const cutoff = new Date(this.ctx.now.getTime() - this.ctx.offlineAfterMs).toISOString();
    const parts: Expression<SqlBool>[] = [sql<SqlBool>`coalesce(devices.last_seen_at, '') >= ${cutoff}`];
    if (this.ctx.onlineIds.length > 0) parts.push(this.idInSet(this.ctx.onlineIds));
    const isOnline = eb.or(parts);
    return wanted ? isOnline : eb.not(isOnline);
  }

  /** `devices.id` in a set passed as one parameter, whatever its size. */
  private idInSet(ids: readonly string[]): Expression<SqlBool> {
    if (this.ctx.dialect === 'sqlite') {
      return sql<SqlBool>`devices.id IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;
    }
    return sql<SqlBool>`devices.id = ANY(${[...ids]}::text[])`;
  }

  private tags(eb: DevicesEb, op: FilterOperator, values: string[]): Expression<SqlBool> {
    if (RANGE[op]) throw filterError('tags take ==, !=, =in= or =out=', { selector: 'tags' });
    const hasAny = eb.exists(
      eb
        .selectFrom('device_tags as t')
        .select(sql.lit(1).as('one'))
        .whereRef('t.device_id', '=', 'devices.id')
        .where((tb) => tb.or(values.map((v) => textMatches(this.ctx.dialect, sql.ref('t.tag'), v)))),
    );
    return op === 'eq' || op === 'in' ? hasAny : eb.not(hasAny);
  }

  private fact(
    eb: DevicesEb,
    name: string,
    selector: string,
    op: FilterOperator,
    values: string[],
  ): Expression<SqlBool> {
    const range = RANGE[op];
    const valueText = sql.ref('f.value_text');
    const rowMatches = (v: string): Expression<SqlBool> => {
      const n = numericValue(v);
      if (range)
        return n === undefined
          ? compare(this.ctx.dialect, valueText, range, v)
          : compare(this.ctx.dialect, sql.ref('f.value_num'), range, n);
      const text = textMatches(this.ctx.dialect, valueText, v);
      return n === undefined ? text : eb.or([text, sql<SqlBool>`f.value_num = ${n}`]);
    };
    if (range && values.length !== 1) throw filterError('range operators take one value', { selector });
    const hasMatch = eb.exists(
      eb
        .selectFrom('device_facts as f')
        .select(sql.lit(1).as('one'))
        .whereRef('f.device_id', '=', 'devices.id')
        .where('f.name', '=', name)
        .where('f.ordinal', '>=', 0)
        .where(() => eb.or(values.map(rowMatches))),
    );
    return op === 'ne' || op === 'out' ? eb.not(hasMatch) : hasMatch;
  }
}
