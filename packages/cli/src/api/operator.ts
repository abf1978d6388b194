/**
 * The operator API as typed calls (routes and schemas from @flotilla/protocol). Commands use these
 * and never build paths themselves.
 */
import { Type } from '@sinclair/typebox';
import {
  AuditList,
  CreateRegistrationKeyResponse,
  CreateTokenResponse,
  Device,
  DeviceList,
  FlotillaError,
  LoginResponse,
  MeResponse,
  OperatorRoutes,
  RegistrationKey,
  RegistrationKeyList,
  SESSION_COOKIE,
  TokenList,
  User,
  UserList,
  routePath,
} from '@flotilla/protocol';
import type {
  ApiToken,
  AuditQuery,
  CreateRegistrationKeyRequest,
  CreateTokenRequest,
  CreateUserRequest,
  DeviceActionRequest,
  DeviceListQuery,
  DeviceTagsRequest,
  UpdateUserRequest,
} from '@flotilla/protocol';
import type { ApiClient } from './client.js';
import { checkBody } from '@flotilla/node-kit';

const byId = (template: string, id: string) => routePath(template, { id });

/** Logs in with a password; returns the user and the session cookie (`name=value`) to use once. */
export async function login(c: ApiClient, username: string, password: string) {
  const res = await c.send('POST', OperatorRoutes.login, { body: { username, password } });
  const body = checkBody(LoginResponse, res.body, `POST ${OperatorRoutes.login}`);
  const cookie = res.headers
    .getSetCookie()
    .map((line) => line.split(';', 1)[0] ?? '')
    .find((pair) => pair.startsWith(`${SESSION_COOKIE}=`));
  if (!cookie) {
    throw new FlotillaError(
      'FLT_NETWORK',
      `the server accepted the login but set no ${SESSION_COOKIE} cookie`,
    );
  }
  return { ...body, cookie };
}

// A JSON body, because the server requires JSON on every cookie-authenticated write (its CSRF rule).
export const logoutSession = (c: ApiClient) => c.requestVoid('POST', OperatorRoutes.logout, { body: {} });
export const me = (c: ApiClient) => c.request('GET', OperatorRoutes.me, MeResponse);

export const createToken = (c: ApiClient, req: CreateTokenRequest) =>
  c.request('POST', OperatorRoutes.tokens, CreateTokenResponse, { body: req });
export const listTokens = (c: ApiClient) => c.request('GET', OperatorRoutes.tokens, TokenList);
export const revokeToken = (c: ApiClient, id: string) =>
  c.requestVoid('DELETE', byId(OperatorRoutes.token, id));

export const listUsers = (c: ApiClient) => c.request('GET', OperatorRoutes.users, UserList);
export const createUser = (c: ApiClient, req: CreateUserRequest) =>
  c.request('POST', OperatorRoutes.users, UserOrWrapped, { body: req }).then(unwrapUser);
export const updateUser = (c: ApiClient, id: string, req: UpdateUserRequest) =>
  c.request('PATCH', byId(OperatorRoutes.user, id), UserOrWrapped, { body: req }).then(unwrapUser);

export const createRegistrationKey = (c: ApiClient, req: CreateRegistrationKeyRequest) =>
  c.request('POST', OperatorRoutes.registrationKeys, CreateRegistrationKeyResponse, { body: req });
export const listRegistrationKeys = (c: ApiClient) =>
  c.request('GET', OperatorRoutes.registrationKeys, RegistrationKeyList);
export const revokeRegistrationKey = (c: ApiClient, id: string) =>
  c
    .request('POST', byId(OperatorRoutes.registrationKeyRevoke, id), KeyOrWrapped, { body: {} })
    .then((r) => ('key' in r ? r.key : r));

export const listDevices = (c: ApiClient, query: DeviceListQuery) =>
  c.request('GET', OperatorRoutes.devices, DeviceList, { query: { ...query } });
export const getDevice = (c: ApiClient, id: string) =>
  c.request('GET', byId(OperatorRoutes.device, id), DeviceOrWrapped).then(unwrapDevice);

export type DeviceAction = 'accept' | 'reject' | 'revoke';
const DEVICE_ACTION_ROUTES: Record<DeviceAction, string> = {
  accept: OperatorRoutes.deviceAccept,
  reject: OperatorRoutes.deviceReject,
  revoke: OperatorRoutes.deviceRevoke,
};
export const deviceAction = (c: ApiClient, action: DeviceAction, id: string, req: DeviceActionRequest) =>
  c
    .request('POST', byId(DEVICE_ACTION_ROUTES[action], id), DeviceOrWrapped, { body: req })
    .then(unwrapDevice);
export const setDeviceTags = (c: ApiClient, id: string, req: DeviceTagsRequest) =>
  c.request('POST', byId(OperatorRoutes.deviceTags, id), DeviceOrWrapped, { body: req }).then(unwrapDevice);

export const listAudit = (c: ApiClient, query: AuditQuery) =>
  c.request('GET', OperatorRoutes.audit, AuditList, { query: { ...query } });

// The protocol names the entities but not every single-entity response shape; both the bare entity
// and `{ <entity>: … }` are accepted so that either server convention works.
const UserOrWrapped = Type.Union([User, Type.Object({ user: User })]);
const unwrapUser = (r: { user: User } | User): User => ('user' in r ? r.user : r);
const KeyOrWrapped = Type.Union([RegistrationKey, Type.Object({ key: RegistrationKey })]);
const DeviceOrWrapped = Type.Union([Device, Type.Object({ device: Device })]);
const unwrapDevice = (r: { device: Device } | Device): Device => ('device' in r ? r.device : r);

export type { ApiToken, Device, RegistrationKey, User };
