/**
 * Telling the host where a container that has just started is, so that a client connecting to
 * its published port during the start is not held for a second (docs/containers.md, "A client
 * connecting while a container starts").
 *
 * Why: an engine before Docker 28 starts the userland proxy of a published port when it joins
 * the container to its network, some 0.2–0.3 s before the container's interface is up (the
 * interface is moved into the container's namespace by a hook of the runtime). A connection
 * accepted in that window makes the proxy dial the container's address; the host asks for it
 * (ARP) and gets no answer yet, and its neighbour entry stays incomplete until the next probe,
 * `retrans_time_ms` (1 s) later. Every connection until then waits with it. Docker 28 ends the
 * window itself by sending unsolicited ARP and neighbour advertisements from the container's
 * interface once it is up; here the agent writes the same knowledge into the host's neighbour
 * table (`ip neigh replace … nud stale`) once the start has returned, which sends the queued
 * packets at once. `stale` is what the kernel itself records from an unsolicited ARP: the entry
 * is confirmed by the next traffic or probed again, never trusted blindly.
 *
 * Best effort: only for an engine on this host's unix socket (a remote engine's bridges are not
 * ours), only for bridge networks, and any failure (no `ip`, not root, no such bridge) is logged
 * once and otherwise ignored; the container runs either way.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import type Docker from 'dockerode';
import type { Logger } from 'pino';

/** The option that names a bridge network's Linux bridge; `br-<id12>` without it. */
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';

/** One neighbour entry to write: an address of the container on a bridge, and its MAC. */
export interface Neighbour {
  family: 4 | 6;
  address: string;
  mac: string;
  bridge: string;
}

/** The Linux bridge behind a docker network, or null when the network is not a bridge. */
export function bridgeOf(network: {
  Id: string;
  Driver?: string;
  Options?: Record<string, string> | null;
}): string | null {
  if (network.Driver !== 'bridge') return null;
  return network.Options?.[BRIDGE_NAME_OPTION] ?? `br-${network.Id.slice(0, 12)}`;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
/** A Linux interface name (at most 15 bytes; never an option of `ip`). */
const INTERFACE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/;

/**
 * The container's addresses on bridge networks, as `inspect` reports them after the start; what
 * is not a plain address, MAC or interface name is left out (the values become `ip` arguments).
 */
export function neighboursOf(
  info: Pick<Docker.ContainerInspectInfo, 'NetworkSettings'>,
  bridges: ReadonlyMap<string, string | null>,
): Neighbour[] {
  const out: Neighbour[] = [];
  for (const endpoint of Object.values(info.NetworkSettings.Networks ?? {})) {
    const bridge = bridges.get(endpoint.NetworkID) ?? null;
    const mac = endpoint.MacAddress;
    if (bridge === null || !INTERFACE.test(bridge) || !MAC.test(mac ?? '')) continue;
    if (isIP(endpoint.IPAddress ?? '') === 4)
      out.push({ family: 4, address: endpoint.IPAddress, mac, bridge });
    if (isIP(endpoint.GlobalIPv6Address ?? '') === 6)
      out.push({ family: 6, address: endpoint.GlobalIPv6Address, mac, bridge });
  }
  return out;
}

/** Runs `ip` with `args`; rejects with its stderr. */
export type IpCommand = (args: readonly string[]) => Promise<void>;

const runIp: IpCommand = (args) =>
  new Promise((resolve, reject) => {
    execFile('ip', [...args], { timeout: 5_000 }, (error, _stdout, stderr) =>
      error ? reject(new Error(stderr.trim() || error.message)) : resolve(),
    );
  });

export class NeighbourAnnouncer {
  /** Bridge names by network id (null: not a bridge); a network's bridge never changes. */
  private readonly bridges = new Map<string, string | null>();
  private warned = false;

  constructor(
    private readonly docker: Docker,
    private readonly logger: Logger,
    private readonly ip: IpCommand = runIp,
  ) {}

  /** Writes the host's neighbour entries of a started container; never throws. */
  async announce(containerId: string): Promise<void> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      for (const endpoint of Object.values(info.NetworkSettings.Networks ?? {})) {
        if (!this.bridges.has(endpoint.NetworkID))
          this.bridges.set(
            endpoint.NetworkID,
            bridgeOf(await this.docker.getNetwork(endpoint.NetworkID).inspect()),
          );
      }
      for (const n of neighboursOf(info, this.bridges))
        await this.ip([
          `-${n.family}`,
          'neigh',
          'replace',
          n.address,
          'lladdr',
          n.mac,
          'dev',
          n.bridge,
          'nud',
          'stale',
        ]);
    } catch (error) {
      if (this.warned) return;
      this.warned = true;
      this.logger.info(
        { container: containerId.slice(0, 12), error: (error as Error).message },
        'cannot write the host neighbour entry of a started container: clients that connect during a start may wait ~1 s',
      );
    }
  }
}
