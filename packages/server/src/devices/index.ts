import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

/** Registers the device gateway and the device-management API. (Filled in by the devices work.) */
export async function registerDeviceApi(_app: FastifyInstance, _ctx: ServerContext): Promise<void> {}
