/**
 * Fleet numbers for the overview, from `GET /api/v1/fleet/overview` (docs/events.md "Fleet
 * overview": device counts and, per app, devices per running release, three aggregate queries on
 * the server whatever the fleet's size). The chart also shows the app's newest releases that no
 * device runs yet (0 devices), read from `GET /api/v1/releases`, so that a new release's adoption is
 * visible from its start.
 */
import type { FleetOverview, ReleaseList } from '@flotilla/protocol';
import { get } from './api.js';

export interface FleetNumbers {
  counts: { label: string; value: number }[];
  /** Per app: how many devices run each release version, most first, then unused releases. */
  distribution: { app: string; updating: number; versions: { version: string; devices: number }[] }[];
}

/** Releases per app shown with 0 devices when no device runs them (the newest ones). */
const RECENT_RELEASES = 6;

export function fleetNumbersOf(overview: FleetOverview, releases: ReleaseList['items']): FleetNumbers {
  const d = overview.devices;
  const counts = [
    { label: 'total', value: d.total },
    { label: 'online', value: d.online },
    { label: 'offline', value: d.offline },
    { label: 'pending', value: d.pending },
  ];
  const newest = new Map<string, string[]>();
  for (const r of [...releases].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))) {
    const list = newest.get(r.app) ?? [];
    if (list.length < RECENT_RELEASES) newest.set(r.app, [...list, r.version]);
  }
  const distribution = overview.apps.map((a) => {
    // A device whose running release the server does not know shows as "unknown".
    const versions = a.releases.map((r) => ({ version: r.version ?? 'unknown', devices: r.devices }));
    const shown = new Set(versions.map((v) => v.version));
    for (const version of [...(newest.get(a.app) ?? [])].reverse())
      if (!shown.has(version)) versions.push({ version, devices: 0 });
    return { app: a.app, updating: a.updating, versions };
  });
  return { counts, distribution };
}

export async function fleetNumbers(): Promise<FleetNumbers> {
  const [overview, releases] = await Promise.all([
    get<FleetOverview>('/api/v1/fleet/overview'),
    get<ReleaseList>('/api/v1/releases'),
  ]);
  return fleetNumbersOf(overview, releases.items);
}
