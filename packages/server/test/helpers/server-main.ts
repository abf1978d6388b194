/**
 * A real server process for tests that kill or race servers: configured from FLOTILLA_* variables
 * like `flotilla server`, it prints `listening <url>` on stdout once it listens (the log goes to stdout too) and closes on SIGTERM.
 */
import { resolveServerConfig } from '../../src/config.js';
import { startServer } from '../../src/main.js';

const server = await startServer(resolveServerConfig({ env: process.env }));
process.stdout.write(`\nlistening ${server.url}\n`);
process.once('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
