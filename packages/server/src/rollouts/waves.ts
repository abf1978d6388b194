/** Wave specs (`1%`, `10%`, `50`, `100%`) and the sizes they give for a number of matched devices. */
import { FlotillaError } from '@flotilla/protocol';

/** Each spec is the cumulative share reached by the end of its wave; sizes are the differences. */
export function waveSizes(specs: readonly string[], matched: number): number[] {
  const sizes: number[] = [];
  let reached = 0;
  for (const spec of specs) {
    const target = spec.endsWith('%')
      ? Math.ceil((matched * Number(spec.slice(0, -1))) / 100)
      : Math.min(matched, Number(spec));
    const cumulative = Math.max(reached, Math.min(matched, target));
    sizes.push(cumulative - reached);
    reached = cumulative;
  }
  return sizes;
}

/**
 * Refuses specs that go backwards (`50%,10%`), that are not a percent or count, or whose last wave
 * is not `100%` when they are all percents (devices would be matched and never reached).
 */
export function checkWaves(specs: readonly string[]): void {
  const bad = (message: string) =>
    new FlotillaError('FLT_WAVES_INVALID', message, { details: { waves: [...specs] } });
  let lastPercent = 0;
  let lastCount = 0;
  for (const spec of specs) {
    if (!/^(?:[1-9][0-9]{0,6}|(?:100|[1-9]?[0-9](?:\.[0-9]{1,2})?)%)$/.test(spec))
      throw bad(`wave "${spec}" is neither a percent (10%) nor a device count (50)`);
    if (spec.endsWith('%')) {
      const p = Number(spec.slice(0, -1));
      if (p <= 0) throw bad(`wave "${spec}" is empty`);
      if (p <= lastPercent) throw bad(`waves are cumulative: "${spec}" must be more than ${lastPercent}%`);
      lastPercent = p;
    } else {
      const n = Number(spec);
      if (n <= lastCount) throw bad(`waves are cumulative: "${spec}" must be more than ${lastCount}`);
      lastCount = n;
    }
  }
}
