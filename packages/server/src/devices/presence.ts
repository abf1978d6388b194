/**
 * Which devices are online on this server, and when each was last seen. Open WebSockets are held
 * here (one per device: a newer connection replaces the older one); `device.online` and
 * `device.offline` are audited and emitted as domain events on transitions. Last-seen times from polls and frames are collected
 * in memory and written in one batched statement per interval, so polling never writes per request.
 * The audit entries of transitions are written in batches too (one transaction for whatever
 * transitions happened while the previous batch was written): 10,000 devices connecting or being
 * disconnected at shutdown cost a few dozen statements, not two per device.
 */
import { FlotillaError, WsClose } from '@flotilla/protocol';
import { randomId } from '@flotilla/node-kit';
import type { MuxSession } from '@flotilla/node-kit';
import type { ServerCommand, ServerFrame, ServerFrameDataOf, WsMessage } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { ServerContext } from '../context.js';
import type { EventBus } from '../events/bus.js';
import type { PresenceView } from './device-view.js';
import { PendingReplies } from './ws/replies.js';

/** The part of a WebSocket connection presence needs. */
export interface DeviceSocket {
  send(frame: ServerFrame): void;
  close(code: number, reason: string): void;
  /** Remote-access streams over this connection (docs/remote-access.md). */
  readonly mux?: MuxSession;
}

/** How often collected last-seen times are written (ms). */
export const LAST_SEEN_FLUSH_MS = 5_000;
/** How long a device has to answer a command the server awaits (ms). */
export const DEVICE_REPLY_TIMEOUT_MS = 10_000;
/** Devices per UPDATE statement (3 parameters each; well below SQLite's 32766). */
const FLUSH_CHUNK = 500;
/** Presence transitions audited per transaction. */
const AUDIT_BATCH = 1_000;

interface Transition {
  deviceId: string;
  action: 'device.online' | 'device.offline';
  at: string;
}

export class Presence implements PresenceView {
  private readonly sockets = new Map<string, DeviceSocket>();
  private readonly seen = new Map<string, string>();
  /** Transitions not yet audited, in order; `auditing` is the write under way. */
  private transitions: Transition[] = [];
  private auditing: Promise<void> | null = null;
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly replies = new PendingReplies();

  constructor(
    private readonly ctx: ServerContext,
    private readonly flushIntervalMs = LAST_SEEN_FLUSH_MS,
    private readonly events?: EventBus,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is pending; call before the database closes. */
  async stop(): Promise<void> {
    this.replies.dropAll();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
    while (this.auditing) await this.auditing;
  }

  touch(deviceId: string, at: Date = this.ctx.clock.now()): void {
    this.seen.set(deviceId, at.toISOString());
  }

  /** Registers a device's connection; an older one is closed with 4009 (replaced). */
  attach(deviceId: string, socket: DeviceSocket): void {
    const previous = this.sockets.get(deviceId);
    this.sockets.set(deviceId, socket);
    this.touch(deviceId);
    if (previous) {
      // Commands sent on the old connection will not be answered on the new one.
      this.replies.dropDevice(deviceId);
      previous.close(WsClose.replaced, 'replaced by a newer connection');
    } else this.audit(deviceId, 'device.online');
  }

  /** Forgets a closed connection (if it is still the device's current one). */
  detach(deviceId: string, socket: DeviceSocket): void {
    if (this.sockets.get(deviceId) !== socket) return;
    this.sockets.delete(deviceId);
    this.replies.dropDevice(deviceId);
    this.touch(deviceId);
    this.audit(deviceId, 'device.offline');
  }

  isConnected(deviceId: string): boolean {
    return this.sockets.has(deviceId);
  }

  get connectedCount(): number {
    return this.sockets.size;
  }

  onlineIds(): string[] {
    return [...new Set([...this.sockets.keys(), ...this.seen.keys()])];
  }

  pendingLastSeen(deviceId: string): string | undefined {
    return this.seen.get(deviceId);
  }

  /** Sends a server-initiated command to the device, if it is connected here. */
  send<C extends ServerCommand>(deviceId: string, command: C, data: ServerFrameDataOf<C>): boolean {
    const socket = this.sockets.get(deviceId);
    if (!socket) return false;
    socket.send({ id: randomId('srv_', 8), command, data } as ServerFrame);
    return true;
  }

  /**
   * Sends a command and resolves with the device's answer (the frame carrying the same id).
   * FLT_DEVICE_OFFLINE when it is not connected here or disconnects first; FLT_DEVICE_TIMEOUT when it
   * does not answer within `timeoutMs`.
   */
  request<C extends ServerCommand>(
    deviceId: string,
    command: C,
    data: ServerFrameDataOf<C>,
    timeoutMs = DEVICE_REPLY_TIMEOUT_MS,
  ): Promise<WsMessage> {
    const socket = this.sockets.get(deviceId);
    if (!socket)
      return Promise.reject(
        new FlotillaError(
          'FLT_DEVICE_OFFLINE',
          `device ${deviceId} is not connected to this server; try again when it is online`,
          { details: { deviceId } },
        ),
      );
    const id = randomId('srv_', 8);
    const answer = this.replies.wait(deviceId, id, timeoutMs);
    socket.send({ id, command, data } as ServerFrame);
    return answer;
  }

  /** The stream multiplexer of the device's connection here; FLT_DEVICE_OFFLINE when not connected. */
  muxOf(deviceId: string): MuxSession {
    const mux = this.sockets.get(deviceId)?.mux;
    if (!mux)
      throw new FlotillaError(
        'FLT_DEVICE_OFFLINE',
        `device ${deviceId} is not connected to this server; try again when it is online`,
        { details: { deviceId } },
      );
    return mux;
  }

  /** Called by a connection for each answer frame; false when nobody awaits it. */
  settleReply(deviceId: string, message: WsMessage): boolean {
    return this.replies.settle(deviceId, message);
  }

  /** Closes the device's connection now (revocation, rejection). */
  disconnect(deviceId: string, code: number, reason: string): void {
    this.sockets.get(deviceId)?.close(code, reason);
  }

  closeAll(code: number, reason: string): void {
    for (const socket of this.sockets.values()) socket.close(code, reason);
  }

  /** Writes collected last-seen times; concurrent calls share one write. */
  flush(): Promise<void> {
    this.flushing ??= this.writeSeen().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async writeSeen(): Promise<void> {
    const batch = [...this.seen];
    for (let i = 0; i < batch.length; i += FLUSH_CHUNK) {
      const chunk = batch.slice(i, i + FLUSH_CHUNK);
      try {
        if (this.ctx.dialect === 'postgres') {
          // Two array parameters for the chunk instead of three per device. The rows are locked in
          // id order, as assignments lock them (lockAcceptedIds): taken in another order, a
          // statement over several rows could deadlock with an assignment or a director sync.
          await sql`
            UPDATE devices SET last_seen_at = seen.at
            FROM (
              SELECT d.id, s.at
              FROM devices AS d
              JOIN unnest(${chunk.map(([id]) => id)}::text[], ${chunk.map(([, at]) => at)}::text[]) AS s(id, at)
                ON d.id = s.id
              ORDER BY d.id
              FOR UPDATE OF d
            ) AS seen
            WHERE devices.id = seen.id`.execute(this.ctx.db);
        } else {
          const cases = sql.join(
            chunk.map(([id, at]) => sql`WHEN ${id} THEN ${at}`),
            sql` `,
          );
          await this.ctx.db
            .updateTable('devices')
            .set({ last_seen_at: sql<string>`CASE id ${cases} END` })
            .where(
              'id',
              'in',
              chunk.map(([id]) => id),
            )
            .execute();
        }
      } catch (e) {
        this.ctx.log.warn({ err: e, devices: chunk.length }, 'could not record last-seen times; will retry');
        continue;
      }
      // Keep entries that were touched again while the write ran.
      for (const [id, at] of chunk) if (this.seen.get(id) === at) this.seen.delete(id);
    }
  }

  private audit(deviceId: string, action: Transition['action']): void {
    this.events?.emit({ type: action, deviceId });
    this.transitions.push({ deviceId, action, at: this.ctx.clock.now().toISOString() });
    this.startAuditing();
  }

  private startAuditing(): void {
    if (this.auditing) return;
    this.auditing = this.writeTransitions().finally(() => {
      this.auditing = null;
      // A transition may have come between the writer's last look and this.
      if (this.transitions.length > 0) this.startAuditing();
    });
  }

  /** Audits the transitions collected, a batch per transaction, until none are left. */
  private async writeTransitions(): Promise<void> {
    // Let the transitions of this tick join the first batch.
    await Promise.resolve();
    while (this.transitions.length > 0) {
      const batch = this.transitions.splice(0, AUDIT_BATCH);
      try {
        await this.ctx.db.transaction().execute((trx) =>
          this.ctx.audit.recordMany(
            batch.map(({ deviceId, action, at }) => ({
              actorType: 'system',
              actorId: 'presence',
              action,
              subjectType: 'device',
              subjectId: deviceId,
              at,
            })),
            trx,
          ),
        );
      } catch (e) {
        this.ctx.log.warn({ err: e, transitions: batch.length }, 'could not record presence changes');
      }
    }
  }
}
