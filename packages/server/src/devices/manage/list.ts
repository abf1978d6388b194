/** The operator's device list: RSQL filter and sort translated to SQL, a page plus the total count. */
import { LIMITS } from '@flotilla/protocol';
import type { DeviceList, DeviceListQuery } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Dialect } from '../../db/dialect.js';
import { DEVICE_COLUMNS, toDevices } from '../device-view.js';
import type { ViewContext } from '../device-view.js';
import { compileFilter } from '../rsql/translate.js';
import { parseSort } from '../rsql/sort.js';

export interface ListContext extends ViewContext {
  dialect: Dialect;
}

export async function listDevices(ctx: ListContext, query: DeviceListQuery): Promise<DeviceList> {
  const limit = query.limit ?? LIMITS.pageSizeDefault;
  const offset = query.offset ?? 0;
  const sort = parseSort(query.sort);
  const where =
    query.filter === undefined || query.filter.trim() === ''
      ? sql<boolean>`TRUE`
      : compileFilter(query.filter, {
          dialect: ctx.dialect,
          now: ctx.now,
          offlineAfterMs: ctx.offlineAfterMs,
          onlineIds: ctx.presence.onlineIds(),
        });

  let page = ctx.db.selectFrom('devices').select(DEVICE_COLUMNS).where(where);
  for (const key of sort) {
    const column =
      ctx.dialect === 'postgres' &&
      key.column !== 'devices.last_seen_at' &&
      key.column !== 'devices.enrolled_at'
        ? sql`${sql.ref(key.column)} COLLATE "C"`
        : sql.ref(key.column);
    page = page.orderBy(column, (ob) => (key.direction === 'asc' ? ob.asc() : ob.desc()).nullsLast());
  }
  const [rows, count] = await Promise.all([
    page.limit(limit).offset(offset).execute(),
    ctx.db
      .selectFrom('devices')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where(where)
      .executeTakeFirstOrThrow(),
  ]);
  return { items: await toDevices(ctx, rows), total: Number(count.n), limit, offset };
}
