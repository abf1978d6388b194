/**
 * The daemon's lifecycle as an explicit state machine (temporal's worker):
 * INITIALIZED → ENROLLING → RUNNING → STOPPING → STOPPED | FAILED, plus PENDING_ACCEPTANCE
 * (enrolled, an operator must accept it), REJECTED and REVOKED (the agent stops contacting the server).
 */
export type AgentLifecycleState =
  | 'INITIALIZED'
  | 'ENROLLING'
  | 'PENDING_ACCEPTANCE'
  | 'RUNNING'
  | 'REJECTED'
  | 'REVOKED'
  | 'STOPPING'
  | 'STOPPED'
  | 'FAILED';

const ACTIVE = ['ENROLLING', 'PENDING_ACCEPTANCE', 'RUNNING', 'REJECTED', 'REVOKED'] as const;

const TRANSITIONS: Readonly<Record<AgentLifecycleState, readonly AgentLifecycleState[]>> = {
  INITIALIZED: [...ACTIVE, 'STOPPING', 'FAILED'],
  ENROLLING: [...ACTIVE, 'STOPPING', 'FAILED'],
  PENDING_ACCEPTANCE: [...ACTIVE, 'STOPPING', 'FAILED'],
  RUNNING: [...ACTIVE, 'STOPPING', 'FAILED'],
  // Terminal for network activity; only a stop (or a local fatal error) follows.
  REJECTED: ['STOPPING', 'FAILED'],
  REVOKED: ['STOPPING', 'FAILED'],
  STOPPING: ['STOPPED', 'FAILED'],
  STOPPED: [],
  FAILED: [],
};

export class Lifecycle {
  private current: AgentLifecycleState = 'INITIALIZED';

  constructor(private readonly onChange: (from: AgentLifecycleState, to: AgentLifecycleState) => void) {}

  get state(): AgentLifecycleState {
    return this.current;
  }

  /** Moves to `to` if the machine allows it; returns whether the state changed. */
  transition(to: AgentLifecycleState): boolean {
    if (to === this.current || !TRANSITIONS[this.current].includes(to)) return false;
    const from = this.current;
    this.current = to;
    this.onChange(from, to);
    return true;
  }

  isOneOf(...states: AgentLifecycleState[]): boolean {
    return states.includes(this.current);
  }
}
