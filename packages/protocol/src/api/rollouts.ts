/**
 * Staged rollouts (docs/rollouts.md): a release delivered to the devices a filter selects, wave by
 * wave, gated on the devices' behaviour (a soak period after the commit), paused by itself when
 * too many fail. The operator API and the web dashboard's contract.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Id, LIMITS, Timestamp } from './common.js';
import { AppName, ReleaseVersion } from '../tuf/target.js';

export const RolloutRoutes = {
  rollouts: '/api/v1/rollouts',
  preview: '/api/v1/rollouts/preview',
  rollout: '/api/v1/rollouts/:id',
  action: '/api/v1/rollouts/:id/:action',
  devices: '/api/v1/rollouts/:id/devices',
  why: '/api/v1/rollouts/:id/devices/:deviceId/why',
} as const;

/** A wave's cumulative size: `10%` of the matched devices or a count (`50`). */
export const WAVE_PATTERN = '^(?:[1-9][0-9]{0,6}|(?:100|[1-9]?[0-9](?:\\.[0-9]{1,2})?)%)$';
export const MAX_WAVES = 20;
export const WaveSpec = Type.String({
  pattern: WAVE_PATTERN,
  description:
    'Cumulative share of the matched devices reached by the end of this wave: `10%` or a count `50`',
});

export const RolloutFilter = Type.String({
  minLength: 1,
  maxLength: LIMITS.filterChars,
  description: 'RSQL selecting devices (as `deploy --filter`)',
});

export const RolloutWaves = Type.Array(WaveSpec, { minItems: 1, maxItems: MAX_WAVES });

export const CreateRolloutRequest = Type.Object(
  {
    app: AppName,
    version: ReleaseVersion,
    filter: RolloutFilter,
    waves: RolloutWaves,
    minSuccess: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        description: 'Percent of a wave that must succeed (default 100)',
      }),
    ),
    maxFailure: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        description: 'Percent of a wave that may fail before the rollout pauses (default 0)',
      }),
    ),
    soakSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 7 * 86400,
        description: 'Healthy time after the commit (default 0)',
      }),
    ),
    approveWaves: Type.Optional(
      Type.Boolean({ description: 'Wait for an approval before each wave after the first' }),
    ),
    window: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'Maintenance window, e.g. `Mon-Fri 01:00-05:00 Europe/Helsinki`',
      }),
    ),
    includeNewDevices: Type.Optional(
      Type.Boolean({ description: 'Devices that match the filter later join the current wave' }),
    ),
    retry: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 10, description: 'Retries per device (default 0)' }),
    ),
  },
  { additionalProperties: false },
);
export type CreateRolloutRequest = Static<typeof CreateRolloutRequest>;

export const RolloutPreviewRequest = Type.Object(
  {
    filter: RolloutFilter,
    waves: RolloutWaves,
    app: Type.Optional(AppName),
  },
  { additionalProperties: false },
);
export type RolloutPreviewRequest = Static<typeof RolloutPreviewRequest>;

export const RolloutState = Type.Union([
  Type.Literal('running'),
  Type.Literal('paused'),
  Type.Literal('waiting-approval'),
  Type.Literal('completed'),
  Type.Literal('aborted'),
]);
export type RolloutState = Static<typeof RolloutState>;

/** Where one device stands in a rollout. */
export const RolloutPhase = Type.Union([
  Type.Literal('pending'),
  Type.Literal('notified'),
  Type.Literal('downloading'),
  Type.Literal('installing'),
  Type.Literal('soaking'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
]);
export type RolloutPhase = Static<typeof RolloutPhase>;

export const WaveState = Type.Union([Type.Literal('waiting'), Type.Literal('running'), Type.Literal('done')]);

export const RolloutPreview = Type.Object({
  matched: Type.Integer({ minimum: 0 }),
  waves: Type.Array(Type.Object({ index: Type.Integer({ minimum: 0 }), size: Type.Integer({ minimum: 0 }) })),
});
export type RolloutPreview = Static<typeof RolloutPreview>;

export const WaveCounts = Type.Object({
  pending: Type.Integer(),
  notified: Type.Integer(),
  downloading: Type.Integer(),
  installing: Type.Integer(),
  soaking: Type.Integer(),
  succeeded: Type.Integer(),
  failed: Type.Integer(),
  cancelled: Type.Integer(),
});
export type WaveCounts = Static<typeof WaveCounts>;

export const RolloutWave = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  spec: Type.String(),
  size: Type.Integer({ minimum: 0 }),
  state: WaveState,
  counts: WaveCounts,
});
export type RolloutWave = Static<typeof RolloutWave>;

export const Rollout = Type.Object({
  id: Id,
  app: AppName,
  version: ReleaseVersion,
  targetPath: Type.String(),
  filter: Type.String(),
  state: RolloutState,
  currentWave: Type.Integer({ minimum: 0, description: 'Index of the wave running (or last run)' }),
  matched: Type.Integer({ minimum: 0 }),
  minSuccess: Type.Number(),
  maxFailure: Type.Number(),
  soakSeconds: Type.Integer(),
  approveWaves: Type.Boolean(),
  window: Type.Union([Type.String(), Type.Null()]),
  includeNewDevices: Type.Boolean(),
  retry: Type.Integer(),
  pausedReason: Type.Union([Type.String(), Type.Null()]),
  waves: Type.Array(RolloutWave),
  stats: Type.Object({
    installP50Ms: Type.Union([Type.Integer(), Type.Null()]),
    installP95Ms: Type.Union([Type.Integer(), Type.Null()]),
    failuresByReason: Type.Array(Type.Object({ reason: Type.String(), count: Type.Integer() })),
  }),
  createdAt: Timestamp,
  createdBy: Type.String(),
  updatedAt: Timestamp,
});
export type Rollout = Static<typeof Rollout>;

export const RolloutList = Type.Object({ items: Type.Array(Rollout) });
export type RolloutList = Static<typeof RolloutList>;

export const RolloutListQuery = Type.Object(
  { state: Type.Optional(RolloutState) },
  { additionalProperties: false },
);

export const RolloutAction = Type.Union([
  Type.Literal('pause'),
  Type.Literal('resume'),
  Type.Literal('approve'),
  Type.Literal('abort'),
]);
export type RolloutAction = Static<typeof RolloutAction>;

export const RolloutDevice = Type.Object({
  deviceId: Id,
  wave: Type.Integer({ minimum: 0 }),
  phase: RolloutPhase,
  reason: Type.Union([Type.String(), Type.Null()]),
  retries: Type.Integer({ minimum: 0 }),
  since: Timestamp,
});
export type RolloutDevice = Static<typeof RolloutDevice>;

export const RolloutDevicesQuery = Type.Object(
  {
    wave: Type.Optional(Type.Integer({ minimum: 0 })),
    phase: Type.Optional(RolloutPhase),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.pageSizeMax, default: 100 })),
    after: Type.Optional(Id),
  },
  { additionalProperties: false },
);
export type RolloutDevicesQuery = Static<typeof RolloutDevicesQuery>;

export const RolloutDevicePage = Type.Object({
  items: Type.Array(RolloutDevice),
  next: Type.Union([Id, Type.Null()], { description: 'Pass as `after` for the next page; null at the end' }),
});
export type RolloutDevicePage = Static<typeof RolloutDevicePage>;

export const RolloutWhy = Type.Object({
  deviceId: Id,
  state: Type.String({ description: 'The device phase, or `not-matched`' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  text: Type.String({ description: 'One sentence for a human' }),
  since: Type.Union([Timestamp, Type.Null()]),
  wave: Type.Union([Type.Integer(), Type.Null()]),
  retries: Type.Integer({ minimum: 0 }),
  progress: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  logTail: Type.Optional(Type.String()),
});
export type RolloutWhy = Static<typeof RolloutWhy>;
