import { execFile } from 'node:child_process';
import { FlotillaError } from '@flotilla/protocol';

/** Runs a packaging tool (tar, dpkg-deb); FLT_IO with its stderr when it fails. */
export function runTool(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error)
        reject(
          new FlotillaError('FLT_IO', `${command} failed: ${(stderr || error.message).trim().slice(-1500)}`, {
            details: { command, args },
            cause: error,
          }),
        );
      else resolve(stdout);
    });
  });
}
