/**
 * The control channel's reconnect policy: one connection at a time, reconnect with backoff and
 * full jitter, a fresh token after 4001, and a permanent stop after 4003 (revoked) / 4004 (rejected).
 */
import { FlotillaError, WsClose } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { reactionTo } from '../client/classify.js';
import type { TokenManager } from '../client/tokens.js';
import { serverBackoff } from '../sync/backoff.js';
import { sleep } from '../util/sleep.js';
import { runConnection } from './connection.js';
import type { ConnectionEnd, ConnectionHandlers } from './connection.js';

export interface ChannelOptions {
  baseUrl: string;
  tokens: TokenManager;
  logger: Logger;
  heartbeatIntervalMs: number;
  handshakeTimeoutMs: number;
  closeTimeoutMs: number;
  pollIntervalMs: number;
  handlers: ConnectionHandlers;
  /** Returns false when the error ends the channel (device revoked, rejected, unknown). */
  onError: (error: unknown) => boolean;
  /**
   * A connection that ended before the server's welcome without an answer to go by (code 1006: reset
   * or closed at once, e.g. by a server's connection cap, or the handshake timed out): the channel reconnects
   * with backoff, so without this nothing shows that the device is not connected (the simulator
   * counts them).
   */
  onDropped?: (end: Extract<ConnectionEnd, { kind: 'closed' }>) => void;
  random?: () => number;
  /** Source address of the connections (the fleet simulator spreads many over 127.0.0.0/8). */
  localAddress?: string;
}

/** WebSocket close code 1006: the connection ended without a close frame. */
const ABNORMAL_CLOSURE = 1006;

export class ControlChannel {
  constructor(private readonly options: ChannelOptions) {}

  async run(signal: AbortSignal): Promise<void> {
    const { logger, tokens } = this.options;
    const backoff = serverBackoff(this.options.pollIntervalMs, this.options.random);
    while (!signal.aborted) {
      let token: string;
      try {
        token = await tokens.get(signal);
      } catch (e) {
        if (signal.aborted || !this.options.onError(e)) return;
        const delayMs = backoff.nextAfter(e);
        logger.warn({ err: e, retryInMs: delayMs }, 'control channel: could not get a token');
        await sleep(delayMs, signal);
        continue;
      }
      const end = await runConnection(
        {
          baseUrl: this.options.baseUrl,
          token,
          logger,
          heartbeatIntervalMs: this.options.heartbeatIntervalMs,
          handshakeTimeoutMs: this.options.handshakeTimeoutMs,
          closeTimeoutMs: this.options.closeTimeoutMs,
          ...(this.options.localAddress !== undefined && { localAddress: this.options.localAddress }),
          handlers: {
            ...this.options.handlers,
            onWelcome: (data) => {
              backoff.reset();
              this.options.handlers.onWelcome(data);
            },
          },
        },
        signal,
      );
      if (end.kind === 'stopped' || signal.aborted) return;
      if (end.kind === 'closed' && !end.welcomed && end.code === ABNORMAL_CLOSURE)
        this.options.onDropped?.(end);
      if (!this.afterEnd(end)) return;
      const delayMs = backoff.nextAfter(end.kind === 'refused' ? end.error : null);
      logger.info({ retryInMs: delayMs, attempt: backoff.attempts }, 'control channel: reconnecting');
      await sleep(delayMs, signal);
    }
  }

  /** Reacts to how a connection ended; false when the channel must not reconnect. */
  private afterEnd(end: Exclude<ConnectionEnd, { kind: 'stopped' }>): boolean {
    const { logger, tokens } = this.options;
    switch (end.kind) {
      case 'dead':
        return true;
      case 'refused': {
        const reaction = reactionTo(end.error);
        if (reaction === 'refresh-token') tokens.invalidate();
        else if (reaction !== 'retry') return this.options.onError(end.error);
        logger.warn({ status: end.status, code: end.error.code }, 'control channel: upgrade refused');
        return true;
      }
      case 'closed':
        switch (end.code) {
          case WsClose.deviceRevoked:
            return this.options.onError(closeError('FLT_DEVICE_REVOKED', end.reason));
          case WsClose.deviceRejected:
            return this.options.onError(closeError('FLT_DEVICE_REJECTED', end.reason));
          case WsClose.unauthenticated:
            tokens.invalidate();
            logger.info('control channel: token refused; renewing it');
            return true;
          case WsClose.replaced:
            logger.warn(
              'control channel replaced by another connection of this device (is its data dir copied to another machine?)',
            );
            return true;
          default:
            logger.warn({ code: end.code, reason: end.reason }, 'control channel closed');
            return true;
        }
    }
  }
}

function closeError(code: 'FLT_DEVICE_REVOKED' | 'FLT_DEVICE_REJECTED', reason: string): FlotillaError {
  return new FlotillaError(code, `control channel closed by the server: ${reason || code}`);
}
