/** The releases and deployments operator API (protocol `ReleaseRoutes`) as typed calls. */
import { Type } from '@sinclair/typebox';
import {
  DeployResponse,
  Deployment,
  DeployStatus,
  DeviceAppList,
  PutSecretsResponse,
  Release,
  ReleaseDiff,
  ReleaseList,
  ReleaseRoutes,
  RevealSecretResponse,
  routePath,
} from '@flotilla/protocol';
import type {
  CreateReleaseRequest,
  DeployRequest,
  DeviceAppAction,
  PutSecretsRequest,
} from '@flotilla/protocol';
import type { ApiClient } from '../api/client.js';

// Either the bare entity or `{ release: … }`, as api/operator.ts accepts for other entities.
const ReleaseOrWrapped = Type.Union([Release, Type.Object({ release: Release })]);
const unwrap = (r: Release | { release: Release }): Release => ('release' in r ? r.release : r);

export const createRelease = (c: ApiClient, req: CreateReleaseRequest) =>
  c.request('POST', ReleaseRoutes.releases, ReleaseOrWrapped, { body: req }).then(unwrap);
export const putSecrets = (c: ApiClient, app: string, version: string, req: PutSecretsRequest) =>
  c.request('PUT', routePath(ReleaseRoutes.secrets, { app, version }), PutSecretsResponse, { body: req });
export const revealSecret = (c: ApiClient, app: string, version: string, name: string) =>
  c.request('POST', routePath(ReleaseRoutes.secretReveal, { app, version, name }), RevealSecretResponse, {
    body: {},
  });
export const listReleases = (c: ApiClient, app: string | undefined) =>
  c.request('GET', ReleaseRoutes.releases, ReleaseList, { query: { app } });
export const getRelease = (c: ApiClient, app: string, version: string) =>
  c.request('GET', routePath(ReleaseRoutes.release, { app, version }), ReleaseOrWrapped).then(unwrap);
export const diffReleases = (c: ApiClient, app: string, from: string, to: string) =>
  c.request('GET', routePath(ReleaseRoutes.diff, { app }), ReleaseDiff, { query: { from, to } });

export const deployRelease = (c: ApiClient, req: DeployRequest) =>
  c.request('POST', ReleaseRoutes.deploy, DeployResponse, { body: req });
export const getDeployment = (c: ApiClient, id: string) =>
  c.request('GET', routePath(ReleaseRoutes.deployment, { id }), Deployment);
export const deployStatus = (c: ApiClient, app: string, version: string) =>
  c.request('GET', ReleaseRoutes.deployStatus, DeployStatus, { query: { app, version } });

export const deviceApps = (c: ApiClient, id: string) =>
  c.request('GET', routePath(ReleaseRoutes.deviceApps, { id }), DeviceAppList);
export const deviceAppAction = (c: ApiClient, id: string, app: string, action: DeviceAppAction) =>
  c.requestVoid('POST', routePath(ReleaseRoutes.deviceAppAction, { id, app, action }), { body: {} });
