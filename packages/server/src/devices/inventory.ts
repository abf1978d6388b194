/**
 * Inventory reports (HTTP `PUT inventory` and the WebSocket `inventory` command): the device's facts
 * are replaced as a whole; `hostname` and `agent.version` also update the device row. A report that
 * changes nothing writes nothing (and is not audited).
 */
import { FlotillaError } from '@flotilla/protocol';
import type { Facts } from '@flotilla/protocol';
import { loadDeviceRow } from './device-view.js';
import type { Db, ServerContext } from '../context.js';
import { assertValidFacts, factsEqual, factsToRows, identityFacts, rowsToFacts } from './facts.js';
import type { FactRow } from './facts.js';

/** Rows per INSERT (6 parameters each). */
const INSERT_CHUNK = 500;

export async function insertFactRows(db: Db, rows: readonly FactRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await db
      .insertInto('device_facts')
      .values(rows.slice(i, i + INSERT_CHUNK))
      .execute();
  }
}

function factRowsOf(db: Db, deviceId: string) {
  return db
    .selectFrom('device_facts')
    .select(['name', 'ordinal', 'value_type', 'value_text', 'value_num'])
    .where('device_id', '=', deviceId)
    .execute();
}

/** Replaces the device's facts; returns whether anything changed. */
export async function replaceInventory(
  ctx: ServerContext,
  deviceId: string,
  facts: Facts,
  sourceIp: string | null,
): Promise<boolean> {
  assertValidFacts(facts);
  await ctx.limits.inventory.take(deviceId, 'too many inventory reports from this device');
  return ctx.db.transaction().execute(async (trx) => {
    const device = await loadDeviceRow(trx, deviceId, ctx.dialect);
    if (!device) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}`);
    const before = rowsToFacts(await factRowsOf(trx, deviceId));
    const identity = identityFacts(facts);
    const hostname = identity.hostname ?? device.hostname;
    const agentVersion = identity.agentVersion ?? device.agent_version;
    const factsChanged = !factsEqual(before, facts);
    if (!factsChanged && hostname === device.hostname && agentVersion === device.agent_version) return false;
    if (factsChanged) {
      await trx.deleteFrom('device_facts').where('device_id', '=', deviceId).execute();
      await insertFactRows(trx, factsToRows(deviceId, facts));
    }
    await trx
      .updateTable('devices')
      .set({ hostname, agent_version: agentVersion })
      .where('id', '=', deviceId)
      .execute();
    await ctx.audit.record(
      {
        actorType: 'device',
        actorId: deviceId,
        action: 'device.inventory',
        subjectType: 'device',
        subjectId: deviceId,
        sourceIp,
        details: {
          facts: Object.keys(facts).length,
          changed: changedNames(before, facts),
          hostname,
          agentVersion,
        },
      },
      trx,
    );
    return true;
  });
}

/** Names of facts added, removed or changed (bounded, for the audit entry). */
function changedNames(before: Facts, after: Facts): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names]
    .filter((n) => JSON.stringify(before[n]) !== JSON.stringify(after[n]))
    .sort()
    .slice(0, 50);
}
