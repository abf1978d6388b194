/**
 * One device's WebSocket control connection: JSON `{id, command, data}` frames in both directions.
 * Bad frames get an `error` reply; repeated abuse or an oversize frame closes with 4000.
 */
import type { WebSocket } from '@fastify/websocket';
import type { FastifyBaseLogger } from 'fastify';
import {
  AgentCommands,
  FlotillaError,
  ServerCommands,
  WS_MAX_FRAME_BYTES,
  WsClose,
} from '@flotilla/protocol';
import { MuxSession, randomId } from '@flotilla/node-kit';
import type { ServerCommand, ServerFrame, ServerFrameDataOf, WsMessage } from '@flotilla/protocol';
import type { DeviceSocket } from '../presence.js';
import type { DeviceRuntime } from '../runtime.js';
import { replaceInventory } from '../inventory.js';
import { agentFrame, idOfInvalidFrame, parseFrame } from './frames.js';
import { assertStorableText } from '../text.js';

/** Bad frames tolerated on one connection before it is closed. */
export const MAX_BAD_FRAMES = 5;
/** Heartbeats (pings) a connection may leave unanswered before it is terminated. */
export const MAX_MISSED_PONGS = 2;

export class DeviceConnection implements DeviceSocket {
  private badFrames = 0;
  private missedPongs = 0;
  /** The newest state version this device was told about (welcome, state-changed). */
  knownStateVersion: number;
  /** Remote-access streams (tunnels, exec, followed logs) carried by this connection. */
  readonly mux: MuxSession;

  constructor(
    private readonly rt: DeviceRuntime,
    readonly deviceId: string,
    private readonly socket: WebSocket,
    private readonly log: FastifyBaseLogger,
    private readonly sourceIp: string,
    stateVersion: number,
  ) {
    this.knownStateVersion = stateVersion;
    this.mux = new MuxSession({
      role: 'server',
      send: (bytes) => {
        if (this.socket.readyState === this.socket.OPEN) this.socket.send(bytes);
      },
      onHostile: (problem) => {
        this.log.warn({ deviceId, problem }, 'device sent a malformed stream frame');
        this.countBadFrame();
      },
    });
    socket.on('close', (code: number) => this.endStreams(code));
    socket.on('message', (raw: Buffer, isBinary: boolean) => void this.onFrame(raw, isBinary));
    socket.on('pong', () => {
      this.missedPongs = 0;
      rt.presence.touch(deviceId);
    });
    socket.on('close', () => rt.presence.detach(deviceId, this));
    rt.presence.attach(deviceId, this);
  }

  send(message: ServerFrame): void {
    if (message.command === ServerCommands.stateChanged || message.command === ServerCommands.welcome) {
      const version = (message.data as { stateVersion?: unknown } | undefined)?.stateVersion;
      if (typeof version === 'number') this.knownStateVersion = Math.max(this.knownStateVersion, version);
    }
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Ends every stream of this connection at once (revocation must not wait for the close handshake). */
  private endStreams(code: number): void {
    this.mux.closeAll({
      error:
        code === WsClose.deviceRevoked
          ? { code: 'FLT_DEVICE_REVOKED', message: `device ${this.deviceId} was revoked` }
          : { code: 'FLT_DEVICE_OFFLINE', message: `device ${this.deviceId} disconnected` },
    });
  }

  close(code: number, reason: string): void {
    this.endStreams(code);
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) {
      this.socket.close(code, reason);
    }
  }

  /** Drops the connection without a close handshake (a peer that did not answer ours). */
  terminate(): void {
    this.endStreams(WsClose.goingAway);
    this.socket.terminate();
  }

  /** Called every heartbeat interval: ping, or terminate a connection that stopped answering. */
  heartbeat(): void {
    if (this.missedPongs >= MAX_MISSED_PONGS) {
      this.log.info({ deviceId: this.deviceId }, 'device missed heartbeats; closing its connection');
      this.socket.terminate();
      this.rt.presence.detach(this.deviceId, this);
      return;
    }
    this.missedPongs += 1;
    this.socket.ping();
  }

  private async onFrame(raw: Buffer, isBinary: boolean): Promise<void> {
    this.rt.presence.touch(this.deviceId);
    if (isBinary) {
      if (raw.length > WS_MAX_FRAME_BYTES) return this.close(WsClose.protocolError, 'frame too large');
      return this.mux.receive(raw);
    }
    let message: WsMessage;
    try {
      message = parseFrame(raw, isBinary);
    } catch (e) {
      const error = e instanceof FlotillaError ? e : new FlotillaError('FLT_BAD_REQUEST', 'unreadable frame');
      if (raw.length > WS_MAX_FRAME_BYTES) return this.close(WsClose.protocolError, 'frame too large');
      return this.rejectFrame(idOfInvalidFrame(raw), error);
    }
    try {
      await this.dispatch(message);
    } catch (e) {
      const error = e instanceof FlotillaError ? e : new FlotillaError('FLT_INTERNAL', 'internal error');
      if (error.code === 'FLT_INTERNAL')
        this.log.error({ err: e, deviceId: this.deviceId }, 'device frame failed');
      if (message.command === AgentCommands.inventory) {
        this.reply(message.id, ServerCommands.ack, {
          ok: false,
          error: { code: error.code, message: error.message },
        });
      } else if (error.code === 'FLT_VALIDATION') this.rejectFrame(message.id, error);
      else this.reply(message.id, ServerCommands.error, { code: error.code, message: error.message });
    }
  }

  private async dispatch(message: WsMessage): Promise<void> {
    // Answers are checked by whoever awaits them: a malformed one fails that request, not the connection.
    switch (message.command) {
      case AgentCommands.ack:
        // Most acks answer notices nobody awaits; an agent that does not know a command acks it
        // with an error, and that answers a request too.
        this.rt.presence.settleReply(this.deviceId, message);
        return;
      case AgentCommands.logsResult:
      case AgentCommands.statsResult:
        // Late (after the timeout) or unasked-for answers are dropped: nobody is waiting for them.
        if (!this.rt.presence.settleReply(this.deviceId, message))
          this.log.debug({ deviceId: this.deviceId, id: message.id }, 'dropped an unawaited logs-result');
        return;
    }
    const frame = agentFrame(message);
    switch (frame.command) {
      case AgentCommands.hello:
        return this.reply(frame.id, ServerCommands.welcome, await this.welcome(frame.data.agentVersion));
      case AgentCommands.heartbeat:
        return this.reply(frame.id, ServerCommands.heartbeat, {});
      case AgentCommands.inventory:
        await replaceInventory(this.rt.ctx, this.deviceId, frame.data.facts, this.sourceIp);
        return this.reply(frame.id, ServerCommands.ack, { ok: true });
      case AgentCommands.ack:
      case AgentCommands.logsResult:
      case AgentCommands.statsResult:
        return; // answered above
    }
  }

  private async welcome(agentVersion: string): Promise<ServerFrameDataOf<'welcome'>> {
    assertStorableText(agentVersion, 'agentVersion');
    const { db, config } = this.rt.ctx;
    const row = await db
      .selectFrom('devices')
      .select(['status', 'state_version', 'agent_version'])
      .where('id', '=', this.deviceId)
      .executeTakeFirstOrThrow();
    if (agentVersion !== '' && row.agent_version !== agentVersion) {
      await db
        .updateTable('devices')
        .set({ agent_version: agentVersion })
        .where('id', '=', this.deviceId)
        .execute();
    }
    return {
      deviceId: this.deviceId,
      status: row.status,
      stateVersion: Number(row.state_version),
      heartbeatIntervalMs: config.heartbeatIntervalMs,
    };
  }

  private reply<C extends ServerCommand>(id: string, command: C, data: ServerFrameDataOf<C>): void {
    this.send({ id, command, data } as ServerFrame);
  }

  private rejectFrame(id: string | undefined, error: FlotillaError): void {
    this.reply(id ?? randomId('srv_', 8), ServerCommands.error, { code: error.code, message: error.message });
    this.countBadFrame();
  }

  private countBadFrame(): void {
    this.badFrames += 1;
    if (this.badFrames >= MAX_BAD_FRAMES) this.close(WsClose.protocolError, 'too many invalid frames');
  }
}
