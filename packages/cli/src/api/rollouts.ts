/** The rollouts operator API (protocol `RolloutRoutes`, docs/rollouts.md) as typed calls. */
import {
  Rollout,
  RolloutDevicePage,
  RolloutList,
  RolloutPreview,
  RolloutRoutes,
  RolloutWhy,
  routePath,
} from '@flotilla/protocol';
import type {
  CreateRolloutRequest,
  RolloutAction,
  RolloutPhase,
  RolloutPreviewRequest,
  RolloutState,
} from '@flotilla/protocol';
import type { ApiClient } from './client.js';

export const createRollout = (c: ApiClient, req: CreateRolloutRequest) =>
  c.request('POST', RolloutRoutes.rollouts, Rollout, { body: req });
export const previewRollout = (c: ApiClient, req: RolloutPreviewRequest) =>
  c.request('POST', RolloutRoutes.preview, RolloutPreview, { body: req });
export const listRollouts = (c: ApiClient, state?: RolloutState) =>
  c.request('GET', RolloutRoutes.rollouts, RolloutList, { query: state === undefined ? {} : { state } });
export const getRollout = (c: ApiClient, id: string) =>
  c.request('GET', routePath(RolloutRoutes.rollout, { id }), Rollout);
export const rolloutAction = (c: ApiClient, id: string, action: RolloutAction, version?: string) =>
  c.request('POST', routePath(RolloutRoutes.action, { id, action }), Rollout, {
    body: version === undefined ? {} : { version },
  });
export const rolloutDevices = (
  c: ApiClient,
  id: string,
  query: { wave?: number; phase?: RolloutPhase; limit?: number; after?: string },
) =>
  c.request('GET', routePath(RolloutRoutes.devices, { id }), RolloutDevicePage, {
    query: { ...query },
  });
export const explainRolloutDevice = (c: ApiClient, id: string, deviceId: string) =>
  c.request('GET', routePath(RolloutRoutes.why, { id, deviceId }), RolloutWhy);
