/**
 * The operator API (CLI, web, automation). Paths are relative to the server root. Authentication:
 * `Authorization: Bearer flt_at_…` (API token) or the `flotilla_session` cookie (web).
 * Roles: viewer (read), deployer (viewer + device acceptance, tags, deployments),
 * admin (everything: users, registration keys, device revocation, audit).
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { DeviceStatus } from './device.js';
import { Facts, Id, LIMITS, Page, Pagination, Tag, Tags, Timestamp } from './common.js';

export const OperatorRoutes = {
  info: '/api/v1/info',
  login: '/api/v1/auth/login',
  logout: '/api/v1/auth/logout',
  me: '/api/v1/auth/me',
  tokens: '/api/v1/tokens',
  token: '/api/v1/tokens/:id',
  users: '/api/v1/users',
  user: '/api/v1/users/:id',
  registrationKeys: '/api/v1/registration-keys',
  registrationKey: '/api/v1/registration-keys/:id',
  registrationKeyRevoke: '/api/v1/registration-keys/:id/revoke',
  devices: '/api/v1/devices',
  device: '/api/v1/devices/:id',
  deviceAccept: '/api/v1/devices/:id/accept',
  deviceReject: '/api/v1/devices/:id/reject',
  deviceRevoke: '/api/v1/devices/:id/revoke',
  deviceTags: '/api/v1/devices/:id/tags',
  audit: '/api/v1/audit',
} as const;

/** Fills `:id` in a route template. */
export function routePath(template: string, params: Record<string, string>): string {
  return template.replace(/:([A-Za-z]+)/g, (_, k: string) => encodeURIComponent(params[k] ?? ''));
}

export const SESSION_COOKIE = 'flotilla_session';

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('deployer'), Type.Literal('viewer')]);
export type Role = Static<typeof Role>;
/** Each role includes the ones after it. */
export const ROLE_RANK: Record<Role, number> = { admin: 3, deployer: 2, viewer: 1 };

export const ServerInfo = Type.Object({
  name: Type.Literal('flotilla'),
  version: Type.String(),
  database: Type.String(),
});
export type ServerInfo = Static<typeof ServerInfo>;

const Username = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@-]+$' });
const Password = Type.String({ minLength: 8, maxLength: 1024 });
const DurationText = Type.String({
  pattern: '^\\d+(\\.\\d+)?(ms|s|m|h|d|w)$',
  description: 'e.g. 30m, 12h, 7d',
});

export const User = Type.Object({
  id: Id,
  username: Username,
  role: Role,
  disabled: Type.Boolean(),
  createdAt: Timestamp,
});
export type User = Static<typeof User>;

export const LoginRequest = Type.Object(
  { username: Username, password: Type.String({ minLength: 1, maxLength: 1024 }) },
  { additionalProperties: false },
);
export type LoginRequest = Static<typeof LoginRequest>;
export const LoginResponse = Type.Object({ user: User, expiresAt: Timestamp });
export type LoginResponse = Static<typeof LoginResponse>;
export const MeResponse = Type.Object({
  user: User,
  via: Type.Union([Type.Literal('session'), Type.Literal('token')]),
});
export type MeResponse = Static<typeof MeResponse>;

export const CreateUserRequest = Type.Object(
  { username: Username, password: Password, role: Role },
  { additionalProperties: false },
);
export type CreateUserRequest = Static<typeof CreateUserRequest>;
export const UpdateUserRequest = Type.Object(
  { role: Type.Optional(Role), password: Type.Optional(Password), disabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateUserRequest = Static<typeof UpdateUserRequest>;
export const UserList = Type.Object({ items: Type.Array(User) });
export type UserList = Static<typeof UserList>;

export const ApiToken = Type.Object({
  id: Id,
  name: Type.String(),
  userId: Id,
  createdAt: Timestamp,
  expiresAt: Type.Union([Timestamp, Type.Null()]),
  lastUsedAt: Type.Union([Timestamp, Type.Null()]),
});
export type ApiToken = Static<typeof ApiToken>;
export const CreateTokenRequest = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128 }), expiresIn: Type.Optional(DurationText) },
  { additionalProperties: false },
);
export type CreateTokenRequest = Static<typeof CreateTokenRequest>;
export const CreateTokenResponse = Type.Object({
  token: ApiToken,
  secret: Type.String({ description: 'Shown once' }),
});
export type CreateTokenResponse = Static<typeof CreateTokenResponse>;
export const TokenList = Type.Object({ items: Type.Array(ApiToken) });
export type TokenList = Static<typeof TokenList>;

export const RegistrationKey = Type.Object({
  id: Id,
  name: Type.String(),
  tags: Tags,
  maxUses: Type.Union([Type.Integer(), Type.Null()]),
  uses: Type.Integer(),
  autoAccept: Type.Boolean(),
  expiresAt: Type.Union([Timestamp, Type.Null()]),
  revokedAt: Type.Union([Timestamp, Type.Null()]),
  createdAt: Timestamp,
  createdBy: Type.String(),
  state: Type.Union([
    Type.Literal('active'),
    Type.Literal('revoked'),
    Type.Literal('expired'),
    Type.Literal('exhausted'),
  ]),
});
export type RegistrationKey = Static<typeof RegistrationKey>;
export const CreateRegistrationKeyRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    tags: Type.Optional(Tags),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
    expiresIn: Type.Optional(DurationText),
    autoAccept: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type CreateRegistrationKeyRequest = Static<typeof CreateRegistrationKeyRequest>;
export const CreateRegistrationKeyResponse = Type.Object({
  key: RegistrationKey,
  secret: Type.String({ description: 'Shown once' }),
});
export type CreateRegistrationKeyResponse = Static<typeof CreateRegistrationKeyResponse>;
export const RegistrationKeyList = Type.Object({ items: Type.Array(RegistrationKey) });
export type RegistrationKeyList = Static<typeof RegistrationKeyList>;

export const Device = Type.Object({
  id: Id,
  status: DeviceStatus,
  publicKey: Type.String(),
  hostname: Type.Union([Type.String(), Type.Null()]),
  tags: Tags,
  facts: Facts,
  online: Type.Boolean(),
  lastSeenAt: Type.Union([Timestamp, Type.Null()]),
  enrolledAt: Timestamp,
  registrationKeyId: Type.Union([Id, Type.Null()]),
  stateVersion: Type.Integer(),
});
export type Device = Static<typeof Device>;

export const DeviceListQuery = Type.Composite(
  [
    Pagination,
    Type.Object({
      filter: Type.Optional(
        Type.String({ maxLength: LIMITS.filterChars, description: 'RSQL, e.g. arch==arm64;tags==canary' }),
      ),
      sort: Type.Optional(
        Type.String({
          maxLength: 256,
          description: 'Comma-separated fields, "-" for descending: -lastSeenAt,id',
        }),
      ),
    }),
  ],
  { additionalProperties: false },
);
export type DeviceListQuery = Static<typeof DeviceListQuery>;
export const DeviceList = Page(Device);
export type DeviceList = Static<typeof DeviceList>;

export const DeviceTagsRequest = Type.Object(
  { add: Type.Optional(Tags), remove: Type.Optional(Tags), set: Type.Optional(Tags) },
  { additionalProperties: false, minProperties: 1 },
);
export type DeviceTagsRequest = Static<typeof DeviceTagsRequest>;
export const DeviceActionRequest = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);
export type DeviceActionRequest = Static<typeof DeviceActionRequest>;

export const AuditEntry = Type.Object({
  id: Type.Integer(),
  at: Timestamp,
  actorType: Type.Union([Type.Literal('user'), Type.Literal('device'), Type.Literal('system')]),
  actorId: Type.String(),
  action: Type.String({ description: 'e.g. device.accept, regkey.create, user.login' }),
  subjectType: Type.String(),
  subjectId: Type.String(),
  sourceIp: Type.Union([Type.String(), Type.Null()]),
  details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});
export type AuditEntry = Static<typeof AuditEntry>;
export const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ maxLength: 128 })),
    action: Type.Optional(
      Type.String({ maxLength: 128, description: 'Exact, or a prefix ending in * (device.*)' }),
    ),
    subjectType: Type.Optional(Type.String({ maxLength: 64 })),
    subjectId: Type.Optional(Type.String({ maxLength: 128 })),
    since: Type.Optional(Timestamp),
    until: Type.Optional(Timestamp),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: LIMITS.pageSizeMax, default: LIMITS.pageSizeDefault }),
    ),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'Cursor: entries with id below this' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;
export const AuditList = Type.Object({
  items: Type.Array(AuditEntry),
  nextBefore: Type.Union([Type.Integer(), Type.Null()]),
});
export type AuditList = Static<typeof AuditList>;

export { Tag };
