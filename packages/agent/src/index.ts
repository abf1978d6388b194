export { resolveAgentConfig, AgentConfigSchema, LOG_LEVELS } from './config.js';
export type { AgentConfig, AgentFlags, ResolveAgentConfigInput } from './config.js';
export { startAgent } from './daemon.js';
export type { RunningAgent, StartAgentOptions } from './daemon.js';
export type { AgentLifecycleState } from './lifecycle.js';
export { collectInventory } from './inventory/collect.js';
export type { InventoryConfig } from './inventory/collect.js';
