import { FlotillaError } from '@flotilla/protocol';

const MAX_SECRET_BYTES = 4096;

/**
 * Reads a password piped on stdin (`--password-stdin`): the whole input up to a size limit, with
 * one trailing newline removed, as `docker login --password-stdin` does.
 */
export async function readSecretFromStdin(
  stdin: AsyncIterable<Buffer | string>,
  what = 'password',
  maxBytes = MAX_SECRET_BYTES,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > maxBytes) {
      throw new FlotillaError('FLT_VALIDATION', `the ${what} on stdin is longer than ${maxBytes} bytes`);
    }
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text === '')
    throw new FlotillaError('FLT_VALIDATION', `no ${what} on stdin (pipe it in: echo … | flotilla …)`);
  return text;
}
