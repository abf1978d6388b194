import { fileURLToPath } from 'node:url';

/** This CLI's executable script, for spawning itself (`flotilla up` runs `flotilla agent`). */
export function cliBinPath(): string {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`./bin.${ext}`, import.meta.url));
}
