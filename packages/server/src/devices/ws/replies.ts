/**
 * Request/response over the control channel: a command sent to a device whose answer (a frame with
 * the same id) someone awaits. Answers are accepted only from the device that was asked.
 */
import { FlotillaError } from '@flotilla/protocol';
import type { WsMessage } from '@flotilla/protocol';

interface Pending {
  deviceId: string;
  resolve: (message: WsMessage) => void;
  reject: (error: FlotillaError) => void;
  timer: NodeJS.Timeout;
}

export class PendingReplies {
  private readonly pending = new Map<string, Pending>();

  /** Resolves with the device's answer to message `id`; FLT_DEVICE_TIMEOUT after `timeoutMs`. */
  wait(deviceId: string, id: string, timeoutMs: number): Promise<WsMessage> {
    return new Promise<WsMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new FlotillaError(
            'FLT_DEVICE_TIMEOUT',
            `device ${deviceId} did not answer within ${timeoutMs} ms; try again`,
            { details: { deviceId, timeoutMs } },
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { deviceId, resolve, reject, timer });
    });
  }

  /** Hands a device's frame to whoever awaits it; false when nobody does (late, unknown, or another device's id). */
  settle(deviceId: string, message: WsMessage): boolean {
    const entry = this.pending.get(message.id);
    if (!entry || entry.deviceId !== deviceId) return false;
    this.finish(message.id, entry);
    entry.resolve(message);
    return true;
  }

  /** Fails everything awaited from a device whose connection is gone. */
  dropDevice(deviceId: string): void {
    for (const [id, entry] of this.pending) {
      if (entry.deviceId !== deviceId) continue;
      this.finish(id, entry);
      entry.reject(
        new FlotillaError('FLT_DEVICE_OFFLINE', `device ${deviceId} disconnected before it answered`, {
          details: { deviceId },
        }),
      );
    }
  }

  /** Fails everything awaited (server shutdown). */
  dropAll(): void {
    for (const deviceId of new Set([...this.pending.values()].map((e) => e.deviceId)))
      this.dropDevice(deviceId);
  }

  private finish(id: string, entry: Pending): void {
    clearTimeout(entry.timer);
    this.pending.delete(id);
  }
}
