import type { Db, ServerContext } from '../context.js';
import type { Actor } from '../users/service.js';

/** Audits an operator's change to a device or registration key, in the transaction that made it. */
export function auditOperator(
  ctx: ServerContext,
  db: Db,
  actor: Actor,
  action: string,
  subject: { type: 'device' | 'registration_key'; id: string },
  details: Record<string, unknown>,
): Promise<void> {
  return ctx.audit.record(
    {
      actorType: 'user',
      actorId: actor.userId,
      action,
      subjectType: subject.type,
      subjectId: subject.id,
      sourceIp: actor.sourceIp,
      details,
    },
    db,
  );
}
