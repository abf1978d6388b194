/** True when a database error is a unique-constraint violation (PostgreSQL 23505 or SQLite). */
export function isUniqueViolation(e: unknown): boolean {
  if (e === null || typeof e !== 'object') return false;
  const code = (e as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Error codes meaning "no space left": errno (files), SQLite, PostgreSQL SQLSTATE 53100 disk_full. */
const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);

/**
 * True when `e`, or any error in its `cause` chain, says the storage is full: a file write
 * (ENOSPC, EDQUOT), SQLite (SQLITE_FULL) or PostgreSQL (SQLSTATE 53100).
 */
export function isDiskFull(e: unknown): boolean {
  const seen = new Set<unknown>();
  for (let cur = e; cur !== null && typeof cur === 'object' && !seen.has(cur);) {
    seen.add(cur);
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && DISK_FULL_CODES.has(code)) return true;
    const errno = (cur as { details?: { errno?: unknown } }).details?.errno;
    if (typeof errno === 'string' && DISK_FULL_CODES.has(errno)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}
