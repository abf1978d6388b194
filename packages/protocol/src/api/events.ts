/**
 * The event stream and fleet statistics (docs/events.md). `GET /api/v1/events` answers
 * `text/event-stream`: one SSE message per event (`id:` the event's sequence number, `data:` a
 * `StreamEvent` as JSON, no `event:` field so that `EventSource.onmessage` sees every type).
 * Resume with the `Last-Event-ID` header (what EventSource sends by itself) or `?after=`.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Id, Timestamp } from './common.js';

export const EventRoutes = {
  events: '/api/v1/events',
  fleetOverview: '/api/v1/fleet/overview',
} as const;

/** An event's sequence number in decimal text (header values and query strings). */
export const EVENT_SEQ_PATTERN = '^[0-9]{1,15}$';

/**
 * A type filter: an exact type (`device.online`), a prefix ending in `.*` (`device.update.*`), or
 * `*` (everything).
 */
export const EVENT_TYPE_PATTERN = '^(\\*|[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*(\\.\\*)?)$';

/** The first message of a stream when events the client asked to resume after are no longer held. */
export const STREAM_GAP_TYPE = 'stream.gap';

export const EventsQuery = Type.Object(
  {
    after: Type.Optional(
      Type.String({
        pattern: EVENT_SEQ_PATTERN,
        description:
          'deliver the events after this sequence number (0: all the log holds); default: only new events. ' +
          'The Last-Event-ID header wins over it.',
      }),
    ),
    type: Type.Optional(
      Type.Array(Type.String({ pattern: EVENT_TYPE_PATTERN, maxLength: 128 }), {
        maxItems: 32,
        description: 'only these types: exact, a prefix ending in .* (device.update.*), or *; repeatable',
      }),
    ),
    device: Type.Optional(Type.Array(Id, { maxItems: 32, description: 'only events about these devices' })),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuery>;

export const StreamEvent = Type.Object({
  /** The sequence number: grows by at least one per event, in commit order. */
  seq: Type.Integer({ minimum: 0 }),
  type: Type.String(),
  at: Timestamp,
  deviceId: Type.Union([Type.String(), Type.Null()]),
  app: Type.Union([Type.String(), Type.Null()]),
  rollout: Type.Union([Type.String(), Type.Null()]),
  /** The rest of the event, by type. */
  data: Type.Record(Type.String(), Type.Unknown()),
});
export type StreamEvent = Static<typeof StreamEvent>;

/** What `stream.gap` carries in `data`. */
export const StreamGap = Type.Object({
  /** The sequence number the client asked to resume after. */
  requestedAfter: Type.Integer({ minimum: 0 }),
  /** The oldest event the log still holds (null: the log is empty). */
  oldestHeld: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  reason: Type.Union([Type.Literal('pruned'), Type.Literal('unknown')]),
});
export type StreamGap = Static<typeof StreamGap>;

export const ReleaseCount = Type.Object({
  /** The release version, or null for a device whose app runs no known release. */
  version: Type.Union([Type.String(), Type.Null()]),
  targetPath: Type.Union([Type.String(), Type.Null()]),
  devices: Type.Integer({ minimum: 0 }),
});
export type ReleaseCount = Static<typeof ReleaseCount>;

export const FleetOverview = Type.Object({
  at: Timestamp,
  devices: Type.Object({
    total: Type.Integer({ minimum: 0 }),
    pending: Type.Integer({ minimum: 0 }),
    accepted: Type.Integer({ minimum: 0 }),
    rejected: Type.Integer({ minimum: 0 }),
    revoked: Type.Integer({ minimum: 0 }),
    /** Accepted devices connected or heard from within the server's offline-after time. */
    online: Type.Integer({ minimum: 0 }),
    /** Accepted devices not online. */
    offline: Type.Integer({ minimum: 0 }),
  }),
  apps: Type.Array(
    Type.Object({
      app: Type.String(),
      /** Accepted devices with this app assigned or running. */
      devices: Type.Integer({ minimum: 0 }),
      /** Devices whose assigned release is not the one they run (an update is under way or failed). */
      updating: Type.Integer({ minimum: 0 }),
      /** Per release the devices run, most devices first. */
      releases: Type.Array(ReleaseCount),
    }),
  ),
});
export type FleetOverview = Static<typeof FleetOverview>;
