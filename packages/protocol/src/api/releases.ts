/**
 * Content-addressed objects, releases, deployments and update reports (issues 3 and 4).
 *
 * Objects are the store's chunks and tree objects, named by the SHA-256 of their uncompressed bytes.
 * On the server they are kept as codec frames (`@flotilla/store` `encodeFrame`), and that frame is
 * what the per-object GET returns, so its URL is immutable and cacheable by a proxy or CDN.
 *
 * Pack format (`application/vnd.flotilla.pack`), used for uploads and batched downloads: a sequence of
 * records `[32-byte raw SHA-256 id][u32 big-endian length][length raw (uncompressed) bytes]`, ended by
 * 32 zero bytes. The whole stream may be compressed as one (`X-Flotilla-Pack-Codec: zstd | br | gzip |
 * identity`), since small files compress poorly one by one. Every record is verified by hash on arrival.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { AppName, ReleaseVersion, RuntimeKind, Sha256Hex } from '../tuf/target.js';
import { Id, LIMITS, Timestamp } from './common.js';
import { SecretCommitments, SecretName, SecretOpening } from '../secrets.js';
import { LOGS_DEFAULT_BYTES, LOGS_MAX_BYTES, LogStream } from './ws.js';

export const ObjectRoutes = {
  missing: '/api/v1/objects/missing',
  upload: '/api/v1/objects/upload',
  object: '/api/v1/objects/:id',
  pack: '/api/v1/objects/pack',
  treePack: '/api/v1/objects/tree-pack',
  deltas: '/api/v1/objects/deltas',
} as const;

export const PACK_CONTENT_TYPE = 'application/vnd.flotilla.pack';
export const FRAME_CONTENT_TYPE = 'application/vnd.flotilla.frame';
export const PACK_CODEC_HEADER = 'x-flotilla-pack-codec';
/**
 * How a pack travels: compressed as a whole (`zstd`, `br`, `gzip`) or not (`identity`), each record
 * holding an object's bytes; or `frames`: each record holds the object's frame as the server stores
 * it (already compressed, FRAME_CONTENT_TYPE's format, verified by decoding and hashing it) and the
 * stream is not compressed again, so neither side compresses anything (download packs only).
 */
export const PackCodec = Type.Union([
  Type.Literal('zstd'),
  Type.Literal('br'),
  Type.Literal('gzip'),
  Type.Literal('identity'),
  Type.Literal('frames'),
]);
export type PackCodec = Static<typeof PackCodec>;
/** Most ids in one "missing" or "pack" request. */
export const MAX_IDS_PER_REQUEST = 10_000;

export const ObjectIdList = Type.Object(
  { ids: Type.Array(Sha256Hex, { maxItems: MAX_IDS_PER_REQUEST }) },
  { additionalProperties: false },
);
export type ObjectIdList = Static<typeof ObjectIdList>;
export const MissingObjectsResponse = Type.Object({ missing: Type.Array(Sha256Hex) });
export type MissingObjectsResponse = Static<typeof MissingObjectsResponse>;
export const PackRequest = Type.Object(
  {
    ids: Type.Array(Sha256Hex, { minItems: 1, maxItems: MAX_IDS_PER_REQUEST }),
    codec: Type.Optional(PackCodec),
  },
  { additionalProperties: false },
);
export type PackRequest = Static<typeof PackRequest>;

/**
 * Tree pack (`ObjectRoutes.treePack`): one round trip for every tree object (directory and file
 * objects, never chunks) a device lacks of a release's tree. The answer is a pack in the format
 * above holding each object reachable from `root` once, except those reachable from any `have`
 * root, a directory always before the objects it names. A `have` root the server does not know
 * (or cannot walk) is ignored; an unknown `root` is a 404 `FLT_OBJECT_MISSING`.
 */
export const MAX_TREE_PACK_HAVE = 16;
export const TreePackRequest = Type.Object(
  {
    root: Sha256Hex,
    have: Type.Optional(
      Type.Array(Sha256Hex, {
        maxItems: MAX_TREE_PACK_HAVE,
        description: 'Roots of trees the device holds whole: nothing reachable from them is sent',
      }),
    ),
    codec: Type.Optional(PackCodec),
  },
  {
    additionalProperties: false,
    description: '`root`: the root object id of the tree wanted; `have`: roots the device holds',
  },
);
export type TreePackRequest = Static<typeof TreePackRequest>;

/**
 * Delta pack (`application/vnd.flotilla.delta-pack`): the answer to a list of (target, base) file
 * object pairs. Records `[32-byte target file id][32-byte base file id][u8 kind][u32 BE length]
 * [length bytes]`, ended by 32 zero bytes, never compressed again as a whole. Kind 1: a zstd frame
 * of the target file's whole content compressed with the base file's content as its dictionary
 * (`zstd --patch-from`); the client rebuilds the content and verifies every chunk of it by hash.
 * Kind 0: no delta for this pair (too large, not worth it, or not possible): fetch its chunks.
 */
export const DELTA_PACK_CONTENT_TYPE = 'application/vnd.flotilla.delta-pack';
/** Most pairs in one delta request. */
export const MAX_DELTA_PAIRS_PER_REQUEST = 1000;
export const DeltaPair = Type.Object(
  { target: Sha256Hex, base: Sha256Hex },
  {
    additionalProperties: false,
    description: 'A file object to rebuild and the file object the client holds',
  },
);
export type DeltaPair = Static<typeof DeltaPair>;
export const DeltaRequest = Type.Object(
  { pairs: Type.Array(DeltaPair, { minItems: 1, maxItems: MAX_DELTA_PAIRS_PER_REQUEST }) },
  { additionalProperties: false },
);
export type DeltaRequest = Static<typeof DeltaRequest>;

export const UploadResponse = Type.Object({
  received: Type.Integer({ description: 'Objects stored by this upload' }),
  duplicates: Type.Integer({ description: 'Objects the server already had' }),
  bytes: Type.Integer({ description: 'Uncompressed bytes received' }),
  wireBytes: Type.Integer({ description: 'Bytes on the wire (compressed pack)' }),
});
export type UploadResponse = Static<typeof UploadResponse>;

export const ReleaseRoutes = {
  releases: '/api/v1/releases',
  release: '/api/v1/releases/:app/:version',
  diff: '/api/v1/releases/:app/diff',
  deploy: '/api/v1/deployments',
  deviceApps: '/api/v1/devices/:id/apps',
  deviceAppAction: '/api/v1/devices/:id/apps/:app/:action',
  deployStatus: '/api/v1/deployments/status',
  deployment: '/api/v1/deployments/:id',
  secrets: '/api/v1/releases/:app/:version/secrets',
  secretReveal: '/api/v1/releases/:app/:version/secrets/:name/reveal',
  /** POST: signs the release with the server's online gateway role (admin); DELETE: withdraws it. */
  gatewaySignature: '/api/v1/releases/:app/:version/gateway-signature',
} as const;

/** The answer of `ReleaseRoutes.gatewaySignature` (POST and DELETE). */
export const GatewaySignatureResponse = Type.Object({
  app: AppName,
  version: ReleaseVersion,
  targetPath: Type.String({ description: '<app>/<version>/<rootObject>' }),
  signed: Type.Boolean({
    description: 'Whether the release is signed (offline, or by the gateway role) now',
  }),
  gatewayVersion: Type.Union([Type.Integer(), Type.Null()], {
    description: 'The version of gateway.json published by this request, null when nothing changed',
  }),
});
export type GatewaySignatureResponse = Static<typeof GatewaySignatureResponse>;

export const CreateReleaseRequest = Type.Object(
  {
    app: AppName,
    version: ReleaseVersion,
    runtime: RuntimeKind,
    rootObject: Sha256Hex,
    config: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.Unknown(), { maxProperties: 1024 }),
    ),
    /** Commitments of the secrets `config` references (`{ "$secret": NAME }`); values go separately. */
    secrets: Type.Optional(SecretCommitments),
  },
  { additionalProperties: false },
);
export type CreateReleaseRequest = Static<typeof CreateReleaseRequest>;

export const Release = Type.Object({
  app: AppName,
  version: ReleaseVersion,
  runtime: RuntimeKind,
  rootObject: Sha256Hex,
  config: Type.Record(Type.String(), Type.Unknown()),
  secrets: Type.Optional(
    Type.Array(
      Type.Object({
        name: SecretName,
        commitment: Sha256Hex,
        stored: Type.Boolean({ description: 'The server holds its value (encrypted)' }),
      }),
      { description: 'The secrets the config references: names and commitments, never values' },
    ),
  ),
  targetPath: Type.String({ description: '<app>/<version>/<rootObject>' }),
  signed: Type.Boolean({ description: 'True once offline-signed targets metadata names it' }),
  files: Type.Integer(),
  bytes: Type.Integer({ description: 'Uncompressed size of all files' }),
  storedBytes: Type.Integer({ description: 'Compressed size of its objects on the server' }),
  createdAt: Timestamp,
  createdBy: Type.String(),
});
export type Release = Static<typeof Release>;

/** `PUT ReleaseRoutes.secrets` (deployer): values and nonces of the release's committed secrets. */
export const PutSecretsRequest = Type.Object(
  { secrets: Type.Record(SecretName, SecretOpening, { minProperties: 1, maxProperties: 64 }) },
  { additionalProperties: false },
);
export type PutSecretsRequest = Static<typeof PutSecretsRequest>;
export const PutSecretsResponse = Type.Object({
  stored: Type.Array(SecretName, { description: 'Names now held (encrypted) by the server' }),
  missing: Type.Array(SecretName, { description: 'Committed names whose value is still missing' }),
});
export type PutSecretsResponse = Static<typeof PutSecretsResponse>;
/** `POST ReleaseRoutes.secretReveal` (admin, audited): one secret's value. */
export const RevealSecretResponse = Type.Object({
  app: AppName,
  version: ReleaseVersion,
  name: SecretName,
  value: Type.String(),
});
export type RevealSecretResponse = Static<typeof RevealSecretResponse>;
export const ReleaseList = Type.Object({ items: Type.Array(Release) });
export type ReleaseList = Static<typeof ReleaseList>;

export const ReleaseDiffQuery = Type.Object(
  { from: ReleaseVersion, to: ReleaseVersion },
  { additionalProperties: false },
);
export type ReleaseDiffQuery = Static<typeof ReleaseDiffQuery>;
export const ReleaseDiff = Type.Object({
  app: AppName,
  from: ReleaseVersion,
  to: ReleaseVersion,
  added: Type.Array(Type.Object({ path: Type.String(), size: Type.Integer() })),
  removed: Type.Array(Type.Object({ path: Type.String(), size: Type.Integer() })),
  modified: Type.Array(
    Type.Object({ path: Type.String(), oldSize: Type.Integer(), newSize: Type.Integer() }),
  ),
  fetchObjects: Type.Integer({ description: 'Objects a device on `from` must fetch to reach `to`' }),
  fetchBytes: Type.Integer({ description: 'Compressed bytes of those objects' }),
});
export type ReleaseDiff = Static<typeof ReleaseDiff>;

export const DeployRequest = Type.Object(
  {
    app: AppName,
    version: ReleaseVersion,
    deviceId: Type.Optional(Id),
    filter: Type.Optional(
      Type.String({ maxLength: LIMITS.filterChars, description: 'RSQL selecting devices' }),
    ),
  },
  { additionalProperties: false, description: 'Exactly one of deviceId or filter' },
);
export type DeployRequest = Static<typeof DeployRequest>;
/** Where a deployment's assignment stands: `running` while batches remain, then `complete` (or `failed`). */
export const DeploymentState = Type.Union([
  Type.Literal('running'),
  Type.Literal('complete'),
  Type.Literal('failed'),
]);
export type DeploymentState = Static<typeof DeploymentState>;

/** `GET /api/v1/deployments/:id`: one deployment's assignment job (batched, in the background). */
export const Deployment = Type.Object({
  id: Id,
  app: AppName,
  version: ReleaseVersion,
  targetPath: Type.String(),
  state: DeploymentState,
  /** Devices the filter (or device id) selected when the deployment was created. */
  total: Type.Integer(),
  /** Devices assigned so far (a selected device no longer accepted when its batch runs is skipped). */
  assigned: Type.Integer(),
  /** Selected devices whose batch has run (assigned or skipped). */
  processed: Type.Integer(),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  finishedAt: Type.Union([Timestamp, Type.Null()]),
});
export type Deployment = Static<typeof Deployment>;

/**
 * The answer to `POST /api/v1/deployments`: 200 when the assignment completed within the request
 * (at most one batch of devices), 202 while it goes on in the background (poll `deployment`).
 */
export const DeployResponse = Type.Object({
  app: AppName,
  version: ReleaseVersion,
  /** The devices selected (all of them assigned once `deployment.state` is `complete`). */
  devices: Type.Array(Id),
  deployment: Deployment,
});
export type DeployResponse = Static<typeof DeployResponse>;

/** Phases of one update on one device, in order; the last three are final. */
export const UpdatePhase = Type.Union([
  Type.Literal('assigned'),
  Type.Literal('verifying'),
  Type.Literal('downloading'),
  Type.Literal('installing'),
  Type.Literal('stopping'),
  Type.Literal('switching'),
  Type.Literal('starting'),
  Type.Literal('health'),
  Type.Literal('committed'),
  Type.Literal('failed'),
  Type.Literal('rolled-back'),
]);
export type UpdatePhase = Static<typeof UpdatePhase>;

/** The agent's report of an update's progress: `POST /api/v1/device/reports`. */
export const DEVICE_REPORTS_ROUTE = '/api/v1/device/reports';
export const UpdateReport = Type.Object(
  {
    app: AppName,
    targetPath: Type.String({ maxLength: 512 }),
    phase: UpdatePhase,
    bytesDone: Type.Optional(Type.Integer({ minimum: 0 })),
    bytesTotal: Type.Optional(Type.Integer({ minimum: 0 })),
    bytesFetched: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Bytes on the wire for this update' }),
    ),
    error: Type.Optional(
      Type.Object(
        {
          code: Type.String({ maxLength: 64 }),
          message: Type.String({ maxLength: 2048 }),
          details: Type.Optional(Type.Unknown()),
        },
        { additionalProperties: false },
      ),
    ),
    running: Type.Optional(
      Type.Union([Type.String({ maxLength: 512 }), Type.Null()], {
        description:
          'On a final phase: the target path the app runs now (null: none), e.g. the release a rollback returned to',
      }),
    ),
    at: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);
export type UpdateReport = Static<typeof UpdateReport>;

/** How a supervised app process stands (docs/updates.md "Crash loops"). */
export const AppProcessState = Type.Union([
  Type.Literal('running'),
  Type.Literal('restarting'),
  Type.Literal('stopped'),
]);
export type AppProcessState = Static<typeof AppProcessState>;
export const AppProcessStatus = Type.Object(
  {
    state: AppProcessState,
    since: Type.String({ format: 'date-time', description: 'When the process entered this state' }),
    restarts: Type.Integer({
      minimum: 0,
      description: 'Restarts since the agent started this release (after an exit or a crash)',
    }),
    lastExit: Type.Union([
      Type.Object(
        {
          code: Type.Union([Type.Integer(), Type.Null()]),
          signal: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
          at: Type.String({ format: 'date-time' }),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
  },
  { additionalProperties: false },
);
export type AppProcessStatus = Static<typeof AppProcessStatus>;

/**
 * The agent's report of how the committed release of an app runs (same route as UpdateReport):
 * sent after each transaction, when the control connection comes up, and when the process exits
 * or is restarted. `targetPath` is the release the app runs.
 */
export const AppStatusReport = Type.Object(
  {
    app: AppName,
    targetPath: Type.String({ maxLength: 512 }),
    process: AppProcessStatus,
    at: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);
export type AppStatusReport = Static<typeof AppStatusReport>;

/** The body of `POST /api/v1/device/reports`: an update's phase, or an app's process status. */
export const DeviceReport = Type.Union([UpdateReport, AppStatusReport]);
export type DeviceReport = Static<typeof DeviceReport>;

/**
 * Several reports of one device in one request: `POST /api/v1/device/reports/batch`. Recorded in
 * order in one transaction, all or none: the first entry refused fails the request with its own
 * error code and `details.index`, and nothing of the batch is recorded.
 */
export const DEVICE_REPORT_BATCH_ROUTE = '/api/v1/device/reports/batch';
/** Most reports in one batch (more: FLT_VALIDATION). */
export const MAX_REPORTS_PER_BATCH = 50;
/** Largest batch body the server reads (more: 413 FLT_BODY_TOO_LARGE). */
export const MAX_REPORT_BATCH_BYTES = 256 * 1024;
export const DeviceReportBatch = Type.Object(
  {
    reports: Type.Array(DeviceReport, {
      minItems: 1,
      maxItems: MAX_REPORTS_PER_BATCH,
      description: 'In the order they happened; applied in this order',
    }),
  },
  { additionalProperties: false },
);
export type DeviceReportBatch = Static<typeof DeviceReportBatch>;

export function isAppStatusReport(report: DeviceReport): report is AppStatusReport {
  return 'process' in report;
}

/** What a device runs and is doing, per app (operator view). */
export const DeviceApp = Type.Object({
  app: AppName,
  desired: Type.Union([Type.String(), Type.Null()], { description: 'Target path assigned' }),
  current: Type.Union([Type.String(), Type.Null()], {
    description: 'Target path the app runs, as the device last reported (a commit or a rollback)',
  }),
  phase: Type.Union([UpdatePhase, Type.Null()]),
  bytesDone: Type.Union([Type.Integer(), Type.Null()]),
  bytesTotal: Type.Union([Type.Integer(), Type.Null()]),
  bytesFetched: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  process: Type.Union([AppProcessStatus, Type.Null()], {
    description: "The running release's process: state, restarts, last exit (process runtime)",
  }),
  updatedAt: Timestamp,
});
export type DeviceApp = Static<typeof DeviceApp>;
export const DeviceAppList = Type.Object({ items: Type.Array(DeviceApp) });
export type DeviceAppList = Static<typeof DeviceAppList>;

/** Operator actions on a device's app, delivered over the control channel. */
export const DeviceAppAction = Type.Union([Type.Literal('rollback'), Type.Literal('restart')]);
export type DeviceAppAction = Static<typeof DeviceAppAction>;

/** `GET /api/v1/deployments/status?app=&version=`: where one release stands across the fleet. */
export const DeployStatusQuery = Type.Object(
  { app: AppName, version: ReleaseVersion },
  { additionalProperties: false },
);
export type DeployStatusQuery = Static<typeof DeployStatusQuery>;
export const DeployStatusDevice = Type.Object({
  deviceId: Id,
  desired: Type.Union([Type.String(), Type.Null()]),
  current: Type.Union([Type.String(), Type.Null()]),
  phase: Type.Union([UpdatePhase, Type.Null()]),
  bytesDone: Type.Union([Type.Integer(), Type.Null()]),
  bytesTotal: Type.Union([Type.Integer(), Type.Null()]),
  bytesFetched: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  process: Type.Union([AppProcessStatus, Type.Null()]),
  updatedAt: Timestamp,
});
export type DeployStatusDevice = Static<typeof DeployStatusDevice>;
export const DeployStatus = Type.Object({
  app: AppName,
  version: ReleaseVersion,
  targetPath: Type.String(),
  /** Devices per phase (only phases that occur), counting devices assigned or running this release. */
  phases: Type.Record(Type.String(), Type.Integer()),
  devices: Type.Array(DeployStatusDevice),
  /** This release's most recent deployments (at most 20), oldest first: their state and progress. */
  deployments: Type.Optional(Type.Array(Deployment)),
});
export type DeployStatus = Static<typeof DeployStatus>;

/** `GET /api/v1/releases?app=` */
export const ReleaseListQuery = Type.Object({ app: Type.Optional(AppName) }, { additionalProperties: false });
export type ReleaseListQuery = Static<typeof ReleaseListQuery>;

/** `POST /api/v1/objects/gc` (admin): objects deleted because no release references them. */
export const OBJECT_GC_ROUTE = '/api/v1/objects/gc';
export const GcResponse = Type.Object({
  deleted: Type.Array(Sha256Hex),
  bytes: Type.Integer({ description: 'Stored bytes freed' }),
  kept: Type.Integer({ description: 'Unreferenced objects kept because they are within the grace period' }),
});
export type GcResponse = Static<typeof GcResponse>;

/** `GET` (deployer: logs can hold secrets): the tail of an app's logs, read live from the connected device. */
export const DEVICE_APP_LOGS_ROUTE = '/api/v1/devices/:id/apps/:app/logs';
export const AppLogsQuery = Type.Object(
  {
    maxBytes: Type.Optional(
      Type.Integer({ minimum: 1, maximum: LOGS_MAX_BYTES, default: LOGS_DEFAULT_BYTES }),
    ),
    stream: Type.Optional(LogStream),
  },
  { additionalProperties: false },
);
export type AppLogsQuery = Static<typeof AppLogsQuery>;
