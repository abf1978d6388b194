import type { Insertable } from 'kysely';
import type { AuditEntryInput, AuditRecorder, AuditRows, Clock, Db } from '../context.js';
import { auditEventRows, insertAuditEvents } from '../db/event-rows.js';
import type { AuditEventEntry } from '../db/event-rows.js';
import type { AuditLogTable } from '../db/schema.js';

/** Entries per insert statement (8 parameters each: well below SQLite's 32,766). */
const AUDIT_CHUNK = 500;

type Entry = AuditEventEntry & { actorType: AuditEntryInput['actorType'] };

/**
 * Writes audit entries to `audit_log` and, as `audit.<action>` events, to the event log's outbox
 * (docs/events.md), in the caller's transaction when one is given: both commit or neither.
 * `afterRecord` tells the event log that the outbox has a new row.
 */
export function createAuditRecorder(defaultDb: Db, clock: Clock, afterRecord?: () => void): AuditRecorder {
  function entriesOf(entries: readonly AuditEntryInput[]): Entry[] {
    const now = clock.now().toISOString();
    return entries.map((entry) => ({
      at: entry.at ?? now,
      actorType: entry.actorType,
      actorId: entry.actorId,
      action: entry.action,
      subjectType: entry.subjectType,
      subjectId: entry.subjectId,
      sourceIp: entry.sourceIp ?? null,
      details: entry.details ?? null,
    }));
  }
  async function write(entries: readonly AuditEntryInput[], db: Db): Promise<void> {
    const rows = entriesOf(entries);
    for (let i = 0; i < rows.length; i += AUDIT_CHUNK) {
      const chunk = rows.slice(i, i + AUDIT_CHUNK);
      await insertAuditEvents(db, chunk);
      await db.insertInto('audit_log').values(auditLogRows(chunk)).execute();
    }
    if (rows.length > 0) afterRecord?.();
  }
  return {
    record: (entry, db = defaultDb) => write([entry], db),
    recordMany: (entries, db = defaultDb) => write(entries, db),
    rows(entries): AuditRows {
      const rows = entriesOf(entries);
      return { audit: auditLogRows(rows), outbox: auditEventRows(rows) };
    },
    written() {
      afterRecord?.();
    },
  };
}

function auditLogRows(rows: readonly Entry[]): Insertable<AuditLogTable>[] {
  return rows.map((row) => ({
    at: row.at,
    actor_type: row.actorType,
    actor_id: row.actorId,
    action: row.action,
    subject_type: row.subjectType,
    subject_id: row.subjectId,
    source_ip: row.sourceIp,
    details: row.details ? JSON.stringify(row.details) : null,
  }));
}
