/**
 * Catches up connections with changes made elsewhere (another server replica, or a direct database
 * change): once per heartbeat, one query per 500 connected devices reads status and state_version;
 * revoked or rejected devices are disconnected and newer state is announced with `state-changed`.
 * On a single server the operator API already does both at once; this bounds the delay otherwise.
 */
import { ServerCommands, WsClose } from '@flotilla/protocol';
import type { ServerContext } from '../../context.js';
import type { DeviceConnection } from './connection.js';

const CHUNK = 500;

export async function reconcileConnections(
  ctx: ServerContext,
  connections: Iterable<DeviceConnection>,
): Promise<void> {
  const byDevice = new Map<string, DeviceConnection>();
  for (const c of connections) byDevice.set(c.deviceId, c);
  const ids = [...byDevice.keys()];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const rows = await ctx.db
      .selectFrom('devices')
      .select(['id', 'status', 'state_version'])
      .where('id', 'in', ids.slice(i, i + CHUNK))
      .execute();
    for (const row of rows) {
      const connection = byDevice.get(row.id);
      if (!connection) continue;
      if (row.status === 'revoked') connection.close(WsClose.deviceRevoked, 'device revoked');
      else if (row.status === 'rejected') connection.close(WsClose.deviceRejected, 'device rejected');
      else if (Number(row.state_version) > connection.knownStateVersion) {
        connection.send({
          id: `srv_${row.id.slice(0, 8)}_${row.state_version}`,
          command: ServerCommands.stateChanged,
          data: { stateVersion: Number(row.state_version) },
        });
      }
    }
  }
}
