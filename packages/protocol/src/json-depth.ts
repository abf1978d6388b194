/**
 * A bound on how deeply JSON from outside may nest. Parsing is iterative, but much that walks a
 * parsed value afterwards is recursive (JSON.stringify, canonical JSON, schema validation), so a
 * body nested some thousands deep would overflow the stack: it is refused before it is parsed.
 */

/** Most nesting of arrays and objects accepted in a request body, a frame or a release config. */
export const MAX_JSON_DEPTH = 64;

/**
 * True when `text` (JSON, valid or not) nests arrays and objects more than `limit` deep. Counts
 * brackets outside strings in one pass without parsing, and stops at the first one past the limit.
 */
export function jsonDepthExceeds(text: string, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return false;
}
