/**
 * Fleet numbers for the overview. `GET /api/v1/fleet/overview` gives them in one answer; a server
 * without that route gets the device counts from `GET /api/v1/devices` totals instead (three
 * `limit=1` queries) and the release distribution from each recent release's deployment status
 * (devices running it), for the newest RECENT_RELEASES versions of each app.
 */
import type { DeployStatus, DeviceList, ReleaseList } from '@flotilla/protocol';
import { ApiError, get } from './api.js';

export interface FleetNumbers {
  counts: { label: string; value: number }[];
  /** Per app: how many devices run each release version; null when the server does not say. */
  distribution: { app: string; versions: { version: string; devices: number }[] }[] | null;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string | null =>
  typeof v === 'string' || typeof v === 'number' ? String(v) : null;
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Reads the overview answer leniently: counts are the numeric fields of `devices`. */
export function normalizeOverview(body: unknown): FleetNumbers {
  const o = isObj(body) ? body : {};
  const devices = isObj(o.devices) ? o.devices : {};
  const counts = Object.entries(devices)
    .filter(([, v]) => num(v) !== null)
    .map(([label, v]) => ({ label, value: num(v) ?? 0 }));
  const raw = o.apps ?? o.releases ?? o.distribution;
  let distribution: FleetNumbers['distribution'] = null;
  if (Array.isArray(raw)) {
    const byApp = new Map<string, { version: string; devices: number }[]>();
    for (const item of raw) {
      if (!isObj(item)) continue;
      const app = text(item.app) ?? text(item.name) ?? '';
      const list = byApp.get(app) ?? [];
      const versions = item.versions ?? item.releases;
      if (Array.isArray(versions)) {
        for (const v of versions)
          if (isObj(v))
            list.push({
              version: text(v.version) ?? text(v.release) ?? 'none',
              devices: num(v.devices ?? v.count) ?? 0,
            });
      } else if (item.version !== undefined || item.release !== undefined) {
        list.push({
          version: text(item.version) ?? text(item.release) ?? 'none',
          devices: num(item.devices ?? item.count) ?? 0,
        });
      }
      byApp.set(app, list);
    }
    distribution = [...byApp].map(([app, versions]) => ({ app, versions }));
  } else if (isObj(raw)) {
    distribution = Object.entries(raw).map(([app, versions]) => ({
      app,
      versions: isObj(versions)
        ? Object.entries(versions).map(([version, n]) => ({ version, devices: num(n) ?? 0 }))
        : [],
    }));
  }
  return { counts, distribution };
}

export async function fleetNumbers(): Promise<FleetNumbers> {
  try {
    return normalizeOverview(await get<unknown>('/api/v1/fleet/overview'));
  } catch (e) {
    if (!(e instanceof ApiError && e.missingRoute)) throw e;
  }
  const total = async (filter?: string) =>
    (await get<DeviceList>('/api/v1/devices', { limit: 1, ...(filter ? { filter } : {}) })).total;
  const [all, online, pending] = await Promise.all([
    total(),
    total('online==true'),
    total('status==pending'),
  ]);
  return {
    counts: [
      { label: 'total', value: all },
      { label: 'online', value: online },
      { label: 'offline', value: all - online },
      { label: 'pending', value: pending },
    ],
    distribution: await distributionFromDeployments(),
  };
}

const RECENT_RELEASES = 6;

async function distributionFromDeployments(): Promise<FleetNumbers['distribution']> {
  const releases = (await get<ReleaseList>('/api/v1/releases')).items;
  const byApp = new Map<string, ReleaseList['items']>();
  for (const r of [...releases].sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt)))
    byApp.set(r.app, [...(byApp.get(r.app) ?? []), r]);
  return Promise.all(
    [...byApp].map(async ([app, list]) => ({
      app,
      versions: await Promise.all(
        list.slice(-RECENT_RELEASES).map(async (r) => {
          const status = await get<DeployStatus>('/api/v1/deployments/status', { app, version: r.version });
          return {
            version: r.version,
            devices: status.devices.filter((d) => d.current === r.targetPath).length,
          };
        }),
      ),
    })),
  );
}
