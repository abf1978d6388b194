/**
 * Typed in-process domain events (docs/architecture.md "Domain events"). Services emit after their
 * transaction commits; other modules subscribe (delta precompute, object access, and later
 * rollouts, the event stream and the web). One bus per app, created by `buildApp` and passed to
 * the modules; nothing here is an import-time singleton. Subscribers here see only this process's
 * events; every event is also written to the event log (events/log.ts), which is what the event
 * stream (`GET /api/v1/events`) serves to every process. A new type needs no change there: the log
 * stores any event generically (`deviceId`, `app`, `rollout` as columns, the rest as JSON), so a
 * payload must never carry a secret.
 */
import type { UpdatePhase } from '@flotilla/protocol';
import type { Logger } from 'pino';

/** Who asked for a change (an operator), as recorded in the audit log. */
export interface EventActor {
  userId: string;
  sourceIp: string | null;
}

/** Every domain event, discriminated by `type`. */
export type DomainEvent =
  | {
      type: 'deployment.created';
      /** The rollout id the director names in each assigned target (`dep_…`). */
      rollout: string;
      app: string;
      version: string;
      targetPath: string;
      deviceIds: readonly string[];
      actor: EventActor;
    }
  | {
      type: 'device.assigned';
      deviceId: string;
      app: string;
      targetPath: string;
      rollout: string;
      /** The device's state version after the assignment. */
      stateVersion: number;
    }
  | {
      type: `device.update.${UpdatePhase}`;
      deviceId: string;
      app: string;
      phase: UpdatePhase;
      /** The release the update is about. */
      targetPath: string;
      /** The release the device runs now, when the report said (a final phase). */
      running?: string | null;
    }
  | {
      type: 'device.app.status';
      deviceId: string;
      app: string;
      /** The release whose process the status is about (what the device runs). */
      targetPath: string;
    }
  | {
      /** A device's WebSocket opened on this server (it had none here). */
      type: 'device.online' | 'device.offline';
      deviceId: string;
    }
  | {
      /** A new device enrolled (pending, or accepted by an auto-accepting registration key). */
      type: 'device.enrolled';
      deviceId: string;
      status: 'pending' | 'accepted';
    }
  | {
      /** An operator accepted, rejected or revoked a device. */
      type: 'device.accepted' | 'device.rejected' | 'device.revoked';
      deviceId: string;
      from: 'pending' | 'accepted' | 'rejected' | 'revoked';
      reason: string | null;
    }
  | RolloutEvent;

/** A staged rollout's transitions (docs/rollouts.md), emitted after their transaction commits. */
export type RolloutEvent =
  | {
      type: 'rollout.created';
      rolloutId: string;
      app: string;
      version: string;
      matched: number;
      actor: EventActor;
    }
  | { type: 'rollout.wave.started'; rolloutId: string; wave: number; size: number }
  | { type: 'rollout.waiting-approval'; rolloutId: string; wave: number }
  | { type: 'rollout.paused'; rolloutId: string; reason: string; actor?: EventActor }
  | { type: 'rollout.resumed'; rolloutId: string; actor: EventActor }
  | { type: 'rollout.approved'; rolloutId: string; wave: number; actor: EventActor }
  | { type: 'rollout.aborted'; rolloutId: string; actor: EventActor; released: number }
  | { type: 'rollout.completed'; rolloutId: string }
  | { type: 'rollout.device.succeeded'; rolloutId: string; deviceId: string; wave: number }
  | { type: 'rollout.device.failed'; rolloutId: string; deviceId: string; wave: number; reason: string };

export type DomainEventType = DomainEvent['type'];

/** The event of one type (`device.update.committed` narrows the update event to that phase). */
export type EventOf<T extends DomainEventType> = DomainEvent extends infer E
  ? E extends { type: infer K }
    ? T extends K
      ? Omit<E, 'type'> & { type: T }
      : never
    : never
  : never;

export type Handler<E> = (event: E) => void | Promise<void>;

export interface EventBus {
  /** Calls every subscriber of the event's type; a subscriber's failure is logged, never thrown. */
  emit(event: DomainEvent): void;
  /** Subscribes to one type; returns the unsubscribe function. */
  on<T extends DomainEventType>(type: T, handler: Handler<EventOf<T>>): () => void;
  /** Subscribes to the events `match` accepts (e.g. every `device.update.*`). */
  subscribe(match: (event: DomainEvent) => boolean, handler: Handler<DomainEvent>): () => void;
}

interface Subscription {
  match: (event: DomainEvent) => boolean;
  handler: Handler<DomainEvent>;
}

export function createEventBus(log: Logger): EventBus {
  const subscriptions = new Set<Subscription>();
  const failed = (event: DomainEvent) => (err: unknown) =>
    log.warn({ err, event: event.type }, 'a domain event subscriber failed');
  const add = (sub: Subscription) => {
    subscriptions.add(sub);
    return () => {
      subscriptions.delete(sub);
    };
  };
  return {
    emit(event) {
      for (const sub of [...subscriptions]) {
        if (!sub.match(event)) continue;
        try {
          const result = sub.handler(event);
          if (result instanceof Promise) result.catch(failed(event));
        } catch (err) {
          failed(event)(err);
        }
      }
    },
    on(type, handler) {
      return add({ match: (e) => e.type === type, handler: handler as Handler<DomainEvent> });
    },
    subscribe(match, handler) {
      return add({ match, handler });
    },
  };
}
