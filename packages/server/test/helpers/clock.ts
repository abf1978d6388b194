import type { Clock } from '../../src/context.js';

/** A clock tests move by hand, so expiry is tested without waiting. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(start = Date.parse('2030-01-01T00:00:00.000Z')) {
    this.ms = start;
  }
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
