/** The fleet simulator (docs/simulator.md): many devices in one process, speaking the real device protocol. */
export { Fleet } from './fleet.js';
export type { FleetOptions } from './fleet.js';
export type { FleetStats, FleetSummary } from './shared.js';
export { parseCrashSpec, parseDuration, parseDurationRange, parseRate } from './options.js';
export type { CrashSpec, DurationRange } from './options.js';
