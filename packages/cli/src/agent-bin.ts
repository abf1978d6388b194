#!/usr/bin/env node
import { runAgentCli } from './agent-program.js';
import { processIo } from './io.js';

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await runAgentCli(process.argv.slice(2), processIo());
