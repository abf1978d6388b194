import type { AuditEntryInput, AuditRecorder, Clock, Db } from '../context.js';
import { insertAuditEvent } from '../db/event-rows.js';

/**
 * Writes audit entries to `audit_log` and, as `audit.<action>` events, to the event log's outbox
 * (docs/events.md), in the caller's transaction when one is given: both commit or neither.
 * `afterRecord` tells the event log that the outbox has a new row.
 */
export function createAuditRecorder(defaultDb: Db, clock: Clock, afterRecord?: () => void): AuditRecorder {
  return {
    async record(entry: AuditEntryInput, db: Db = defaultDb): Promise<void> {
      const at = clock.now().toISOString();
      await insertAuditEvent(db, {
        at,
        actorType: entry.actorType,
        actorId: entry.actorId,
        action: entry.action,
        subjectType: entry.subjectType,
        subjectId: entry.subjectId,
        sourceIp: entry.sourceIp ?? null,
        details: entry.details ?? null,
      });
      await db
        .insertInto('audit_log')
        .values({
          at,
          actor_type: entry.actorType,
          actor_id: entry.actorId,
          action: entry.action,
          subject_type: entry.subjectType,
          subject_id: entry.subjectId,
          source_ip: entry.sourceIp ?? null,
          details: entry.details ? JSON.stringify(entry.details) : null,
        })
        .execute();
      afterRecord?.();
    },
  };
}
