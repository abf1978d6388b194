import type { AuditEntryInput, AuditRecorder, Clock, Db } from '../context.js';

/** Writes audit entries to `audit_log`, in the caller's transaction when one is given. */
export function createAuditRecorder(defaultDb: Db, clock: Clock): AuditRecorder {
  return {
    async record(entry: AuditEntryInput, db: Db = defaultDb): Promise<void> {
      await db
        .insertInto('audit_log')
        .values({
          at: clock.now().toISOString(),
          actor_type: entry.actorType,
          actor_id: entry.actorId,
          action: entry.action,
          subject_type: entry.subjectType,
          subject_id: entry.subjectId,
          source_ip: entry.sourceIp ?? null,
          details: entry.details ? JSON.stringify(entry.details) : null,
        })
        .execute();
    },
  };
}
