/**
 * Operator actions on devices: accept, reject, revoke and tags. Every change bumps the device's
 * state_version, is audited in its transaction, and is pushed to the device's WebSocket after the
 * commit. Revocation is final: it deletes the device's tokens and closes its connection at once.
 */
import { FlotillaError, LIMITS, ServerCommands, WsClose } from '@flotilla/protocol';
import type { Device, DeviceStatus, DeviceTagsRequest } from '@flotilla/protocol';
import type { Db } from '../../context.js';
import type { Dialect } from '../../db/dialect.js';
import type { Actor } from '../../users/service.js';
import { auditOperator } from '../audit.js';
import { loadDeviceRow, loadTags, toDevices } from '../device-view.js';
import type { DeviceRow } from '../device-view.js';
import { viewContext } from '../runtime.js';
import type { DeviceRuntime } from '../runtime.js';
import { assertStorableText } from '../text.js';

export type DeviceAction = 'accept' | 'reject' | 'revoke';

const TRANSITIONS: Record<DeviceAction, { from: readonly DeviceStatus[]; to: DeviceStatus }> = {
  accept: { from: ['pending', 'rejected'], to: 'accepted' },
  reject: { from: ['pending'], to: 'rejected' },
  revoke: { from: ['pending', 'accepted', 'rejected'], to: 'revoked' },
};

async function existingDevice(db: Db, id: string, lock?: Dialect): Promise<DeviceRow> {
  const row = await loadDeviceRow(db, id, lock);
  if (!row) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${id}`, { details: { id } });
  return row;
}

export async function getDevice(rt: DeviceRuntime, id: string): Promise<Device> {
  const [device] = await toDevices(viewContext(rt), [await existingDevice(rt.ctx.db, id)]);
  if (!device) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${id}`);
  return device;
}

export async function changeStatus(
  rt: DeviceRuntime,
  id: string,
  action: DeviceAction,
  reason: string | null,
  actor: Actor,
): Promise<Device> {
  const { ctx } = rt;
  if (reason !== null) assertStorableText(reason, 'reason');
  const rule = TRANSITIONS[action];
  const { next: stateVersion, from } = await ctx.db.transaction().execute(async (trx) => {
    const before = await existingDevice(trx, id);
    if (!rule.from.includes(before.status)) {
      throw new FlotillaError(
        'FLT_DEVICE_STATE_CONFLICT',
        `cannot ${action} a device that is ${before.status}`,
        {
          details: { status: before.status, action },
        },
      );
    }
    const next = Number(before.state_version) + 1;
    const updated = await trx
      .updateTable('devices')
      .set({
        status: rule.to,
        status_changed_at: ctx.clock.now().toISOString(),
        status_reason: reason,
        state_version: next,
      })
      .where('id', '=', id)
      .where('status', '=', before.status)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) {
      throw new FlotillaError('FLT_DEVICE_STATE_CONFLICT', 'the device changed meanwhile; retry', {
        details: { action },
      });
    }
    if (rule.to === 'revoked') await trx.deleteFrom('device_tokens').where('device_id', '=', id).execute();
    await auditOperator(
      ctx,
      trx,
      actor,
      `device.${action}`,
      { type: 'device', id },
      { from: before.status, to: rule.to, reason },
    );
    return { next, from: before.status };
  });
  rt.events?.emit({
    type: `device.${rule.to as 'accepted' | 'rejected' | 'revoked'}`,
    deviceId: id,
    from,
    reason,
  });
  if (rule.to === 'revoked') rt.presence.disconnect(id, WsClose.deviceRevoked, 'device revoked');
  else {
    rt.presence.send(id, ServerCommands.stateChanged, { stateVersion });
    if (rule.to === 'rejected') rt.presence.disconnect(id, WsClose.deviceRejected, 'device rejected');
  }
  return getDevice(rt, id);
}

/** The tag set a request asks for: `set` replaces; `add`/`remove` edit (not combined with `set`). */
export function nextTags(current: readonly string[], req: DeviceTagsRequest): string[] {
  if (req.set !== undefined && (req.add !== undefined || req.remove !== undefined)) {
    throw new FlotillaError('FLT_VALIDATION', 'use either "set" or "add"/"remove", not both');
  }
  const overlap = (req.add ?? []).filter((t) => (req.remove ?? []).includes(t));
  if (overlap.length > 0)
    throw new FlotillaError('FLT_VALIDATION', `tags both added and removed: ${overlap.join(', ')}`);
  const result = new Set(req.set ?? current);
  for (const t of req.add ?? []) result.add(t);
  for (const t of req.remove ?? []) result.delete(t);
  if (result.size > LIMITS.tagsPerDevice) {
    throw new FlotillaError('FLT_VALIDATION', `a device may have at most ${LIMITS.tagsPerDevice} tags`);
  }
  return [...result].sort();
}

export async function changeTags(
  rt: DeviceRuntime,
  id: string,
  req: DeviceTagsRequest,
  actor: Actor,
): Promise<Device> {
  const { ctx } = rt;
  const stateVersion = await ctx.db.transaction().execute(async (trx) => {
    const before = await existingDevice(trx, id, ctx.dialect);
    const current = await loadTags(trx, id);
    const after = nextTags(current, req);
    if (after.join('\n') === current.join('\n')) return null;
    const next = Number(before.state_version) + 1;
    await trx.deleteFrom('device_tags').where('device_id', '=', id).execute();
    if (after.length > 0)
      await trx
        .insertInto('device_tags')
        .values(after.map((tag) => ({ device_id: id, tag })))
        .execute();
    await trx.updateTable('devices').set({ state_version: next }).where('id', '=', id).execute();
    await auditOperator(ctx, trx, actor, 'device.tags', { type: 'device', id }, { before: current, after });
    return next;
  });
  if (stateVersion !== null) rt.presence.send(id, ServerCommands.stateChanged, { stateVersion });
  return getDevice(rt, id);
}
