/**
 * Maintenance windows: `[DAYS] HH:MM-HH:MM [TIME_ZONE]`, e.g. `Mon-Fri 01:00-05:00 Europe/Helsinki`.
 * DAYS is a range (`Mon-Fri`), a list (`Sat,Sun`) or absent (every day); the time zone is an IANA
 * name (default UTC). A window whose end is before its start runs past midnight and belongs to the
 * day it starts on. Evaluated with Intl, so daylight-saving changes follow the zone's rules.
 */
import { FlotillaError } from '@flotilla/protocol';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

export interface MaintenanceWindow {
  text: string;
  days: ReadonlySet<number>;
  startMin: number;
  endMin: number;
  timeZone: string;
}

function invalid(text: string, why: string): FlotillaError {
  return new FlotillaError('FLT_WINDOW_INVALID', `maintenance window "${text}": ${why}`, {
    details: { window: text, example: 'Mon-Fri 01:00-05:00 Europe/Helsinki' },
  });
}

function dayIndex(text: string, name: string): number {
  const i = DAYS.findIndex((d) => d.toLowerCase() === name.toLowerCase());
  if (i < 0) throw invalid(text, `"${name}" is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
  return i;
}

function minutes(text: string, hhmm: string): number {
  const m = /^([01]?[0-9]|2[0-4]):([0-5][0-9])$/.exec(hhmm);
  if (!m) throw invalid(text, `"${hhmm}" is not a time HH:MM`);
  const total = Number(m[1]) * 60 + Number(m[2]);
  if (total > 24 * 60) throw invalid(text, `"${hhmm}" is after 24:00`);
  return total;
}

export function parseWindow(text: string): MaintenanceWindow {
  const parts = text.trim().split(/\s+/);
  let days: Set<number> = new Set([0, 1, 2, 3, 4, 5, 6]);
  if (parts.length > 0 && /^[A-Za-z]/.test(parts[0]!)) {
    const spec = parts.shift()!;
    days = new Set();
    for (const piece of spec.split(',')) {
      const [from, to] = piece.split('-');
      if (to === undefined) days.add(dayIndex(text, from!));
      else {
        const a = dayIndex(text, from!);
        const b = dayIndex(text, to);
        for (let d = a; ; d = (d + 1) % 7) {
          days.add(d);
          if (d === b) break;
        }
      }
    }
  }
  const range = parts.shift();
  if (range === undefined) throw invalid(text, 'no time range HH:MM-HH:MM');
  const [from, to, extra] = range.split('-');
  if (to === undefined || extra !== undefined) throw invalid(text, `"${range}" is not HH:MM-HH:MM`);
  const startMin = minutes(text, from!);
  const endMin = minutes(text, to);
  if (startMin === endMin) throw invalid(text, 'the window is empty');
  const timeZone = parts.shift() ?? 'UTC';
  if (parts.length > 0) throw invalid(text, `unexpected "${parts.join(' ')}"`);
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw invalid(text, `"${timeZone}" is not a time zone (an IANA name such as Europe/Helsinki)`);
  }
  return { text, days, startMin, endMin, timeZone };
}

/** Weekday (0 = Sunday) and minute of the day at `at` in the zone. */
const formats = new Map<string, Intl.DateTimeFormat>();

function localTime(at: Date, timeZone: string): { day: number; min: number } {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formats.set(timeZone, format);
  }
  const parts = format.formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return {
    day: DAYS.indexOf(get('weekday') as (typeof DAYS)[number]),
    min: Number(get('hour')) * 60 + Number(get('minute')),
  };
}

export function windowOpen(w: MaintenanceWindow, at: Date): boolean {
  const { day, min } = localTime(at, w.timeZone);
  if (w.startMin < w.endMin) return w.days.has(day) && min >= w.startMin && min < w.endMin;
  return (w.days.has(day) && min >= w.startMin) || (w.days.has((day + 6) % 7) && min < w.endMin);
}

/** The next moment (to the minute, within 8 days) the window opens, or null. */
export function nextOpening(w: MaintenanceWindow, from: Date): Date | null {
  const start = Math.ceil(from.getTime() / 60_000) * 60_000;
  for (let t = start; t < start + 8 * 86_400_000; t += 60_000)
    if (windowOpen(w, new Date(t))) return new Date(t);
  return null;
}
