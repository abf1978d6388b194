/** Reading the audit log: newest first, filtered, paged by an id cursor (`before`). */
import { LIMITS } from '@flotilla/protocol';
import type { AuditEntry, AuditList, AuditQuery } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Selectable } from 'kysely';
import type { ServerContext } from '../context.js';
import type { AuditLogTable } from '../db/schema.js';

function toEntry(row: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: row.id,
    at: row.at,
    actorType: row.actor_type,
    actorId: row.actor_id,
    action: row.action,
    subjectType: row.subject_type,
    subjectId: row.subject_id,
    sourceIp: row.source_ip,
    details: row.details === null ? null : (JSON.parse(row.details) as Record<string, unknown>),
  };
}

export async function queryAudit(ctx: ServerContext, q: AuditQuery): Promise<AuditList> {
  const limit = q.limit ?? LIMITS.pageSizeDefault;
  let query = ctx.db.selectFrom('audit_log').selectAll();
  if (q.actor !== undefined) query = query.where('actor_id', '=', q.actor);
  if (q.action !== undefined) {
    const action = q.action;
    query = action.endsWith('*')
      ? // `device.*`: an exact prefix compare (LIKE differs in case rules between the dialects).
        query.where(sql<string>`substr(action, 1, ${sql.lit(action.length - 1)})`, '=', action.slice(0, -1))
      : query.where('action', '=', action);
  }
  if (q.subjectType !== undefined) query = query.where('subject_type', '=', q.subjectType);
  if (q.subjectId !== undefined) query = query.where('subject_id', '=', q.subjectId);
  if (q.since !== undefined) query = query.where('at', '>=', new Date(q.since).toISOString());
  if (q.until !== undefined) query = query.where('at', '<', new Date(q.until).toISOString());
  if (q.before !== undefined) query = query.where('id', '<', q.before);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { items: page.map(toEntry), nextBefore: rows.length > limit && last ? last.id : null };
}
