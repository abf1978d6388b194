/**
 * The TUF part of the wire contract: where devices fetch metadata, and the operator API the CLI uses
 * for `flotilla keys init|rotate|renew` and release signing (root and targets are uploaded as the
 * signed metadata JSON itself, signed offline).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';

export const TufRoutes = {
  /**
   * The image repository (`root.json`, `timestamp.json`, `N.<role>.json`) and its targets (a release's
   * root object at `<app>/<version>/<sha256>.<rootObjectId>`, or without the hash prefix): an operator
   * or an accepted device's token. A TUF client's targets base URL is `/tuf/image/targets/`.
   */
  imageFile: '/tuf/image/:file',
  imageTarget: '/tuf/image/targets/:app/:version/:file',
  /** A device's director repository: that device's token or an operator. */
  directorFile: '/tuf/director/:deviceId/:file',
  /** Operator API. */
  onlineKeys: '/api/v1/tuf/online-keys',
  status: '/api/v1/tuf/status',
  root: '/api/v1/tuf/root',
  targets: '/api/v1/tuf/targets',
} as const;

/**
 * Sent by a device with its director reads: the newest state version it was told about (`welcome`,
 * `state-changed`), as a decimal integer. The server may then answer from a token check made up to a
 * few seconds ago only if that check read this version or a newer one, so a device never gets
 * director metadata older than what it was told about (docs/devices.md "Director reads"). Without
 * it, every director read checks the token against the database. Not a credential: a wrong value
 * costs the sender a database check, nothing more.
 */
export const STATE_VERSION_HEADER = 'x-flotilla-state-version';

/** The server's online public keys (raw ed25519, base64url) that a new image root must name. */
export const TufOnlineKeys = Type.Object({
  snapshot: Type.String(),
  timestamp: Type.String(),
  /** The key of the delegated `gateway` role (`flotilla keys delegate-gateway`); absent on older servers. */
  gateway: Type.Optional(Type.String()),
});
export type TufOnlineKeys = Static<typeof TufOnlineKeys>;

const RoleState = Type.Object({ version: Type.Integer({ minimum: 1 }), expires: Type.String() });

export const TufExpiryWarning = Type.Object({
  repository: Type.Literal('image'),
  role: Type.Union([Type.Literal('root'), Type.Literal('targets')]),
  version: Type.Integer(),
  expires: Type.String(),
  remainingSeconds: Type.Integer({ description: 'Negative once expired' }),
  expired: Type.Boolean(),
  command: Type.String({
    description: 'The CLI command that renews it, e.g. `flotilla keys renew --role targets`',
  }),
});
export type TufExpiryWarning = Static<typeof TufExpiryWarning>;

/** GET status: the image repository's current versions and expiries, and warnings for offline roles. */
export const TufStatus = Type.Object({
  initialized: Type.Boolean(),
  root: Type.Optional(RoleState),
  targets: Type.Optional(RoleState),
  snapshot: Type.Optional(RoleState),
  timestamp: Type.Optional(RoleState),
  /** The delegated gateway role, when the offline targets delegate apps to it. */
  gateway: Type.Optional(
    Type.Object({
      apps: Type.Array(Type.String()),
      keyId: Type.String({ description: 'The key the delegation names' }),
      keyMatches: Type.Boolean({ description: "Whether it is this server's online gateway key" }),
      version: Type.Optional(Type.Integer()),
      expires: Type.Optional(Type.String()),
    }),
  ),
  warnings: Type.Array(TufExpiryWarning),
});
export type TufStatus = Static<typeof TufStatus>;

/** The answer to an accepted root or targets upload. */
export const TufSubmitResponse = Type.Object({
  role: Type.Union([Type.Literal('root'), Type.Literal('targets')]),
  version: Type.Integer({ minimum: 1 }),
  snapshot: Type.Optional(Type.Integer()),
  timestamp: Type.Optional(Type.Integer()),
});
export type TufSubmitResponse = Static<typeof TufSubmitResponse>;

/**
 * Why a device refused an update at the trust step, as it reports it to the server (embedded in the
 * update/phase report): the stable code, the message, and where it happened.
 */
export const TufVerificationFailure = Type.Object(
  {
    code: Type.String({ description: 'A FLT_TUF_* (or FLT_KEY_*) code' }),
    message: Type.String({ maxLength: 2048 }),
    repository: Type.Optional(Type.Union([Type.Literal('image'), Type.Literal('director')])),
    step: Type.Optional(
      Type.Union([
        Type.Literal('root'),
        Type.Literal('timestamp'),
        Type.Literal('snapshot'),
        Type.Literal('targets'),
      ]),
    ),
    path: Type.Optional(Type.String({ maxLength: 512, description: 'The target path concerned, if any' })),
  },
  { additionalProperties: false },
);
export type TufVerificationFailure = Static<typeof TufVerificationFailure>;
