/**
 * Event log rows that other modules write in their own transactions (the audit recorder's outbox
 * rows), below both audit/ and events/ so that neither imports the other (docs/events.md).
 */
import type { Insertable } from 'kysely';
import type { Db, EventOutboxTable } from './schema.js';

/** A payload larger than this keeps only its scalar fields. */
const MAX_PAYLOAD_CHARS = 16 * 1024;
/** Keys of audit details whose values are never copied into an event. */
const SECRET_KEY = /(password|secret|passphrase|private_?key|credential|^token$)/i;

/** A payload as stored: JSON, cut down to its scalar fields when large. */
export function payloadText(rest: Record<string, unknown>): string {
  const text = JSON.stringify(rest);
  if (text.length <= MAX_PAYLOAD_CHARS) return text;
  const scalars: Record<string, unknown> = { truncated: true };
  for (const [k, v] of Object.entries(rest)) {
    if (typeof v === 'string' && v.length <= 1024) scalars[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) scalars[k] = v;
    else if (Array.isArray(v)) scalars[`${k}Count`] = v.length;
  }
  return JSON.stringify(scalars);
}

/** Removes values under secret-looking keys, at any depth. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[…]';
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_KEY.test(k) ? '[redacted]' : redactSecrets(v, depth + 1);
    }
    return out;
  }
  return value;
}

/** An audit entry as the recorder writes it (below audit/, so both can use the shape). */
export interface AuditEventEntry {
  at: string;
  actorType: string;
  actorId: string;
  action: string;
  subjectType: string;
  subjectId: string;
  sourceIp: string | null;
  details: Record<string, unknown> | null;
}

/** Audit entries as outbox rows (`audit.<action>`), in order. */
export function auditEventRows(entries: readonly AuditEventEntry[]): Insertable<EventOutboxTable>[] {
  return entries.map((entry) => ({
    type: `audit.${entry.action}`,
    at: entry.at,
    device_id: entry.subjectType === 'device' ? entry.subjectId : null,
    app: null,
    rollout: null,
    payload: payloadText({
      actorType: entry.actorType,
      actorId: entry.actorId,
      subjectType: entry.subjectType,
      subjectId: entry.subjectId,
      sourceIp: entry.sourceIp,
      details: entry.details === null ? null : redactSecrets(entry.details),
    }),
  }));
}

/** Audit entries as outbox rows (`audit.<action>`), in order, with one insert, in the recorder's transaction. */
export async function insertAuditEvents(db: Db, entries: readonly AuditEventEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.insertInto('event_outbox').values(auditEventRows(entries)).execute();
}
