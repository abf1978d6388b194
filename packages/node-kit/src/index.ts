/**
 * Node-only plumbing shared by store, server, agent and cli (never imported by the web dashboard:
 * the contract lives in @flotilla/protocol). One copy of each piece; named exports only.
 */
export const NODE_KIT = '@flotilla/node-kit';
