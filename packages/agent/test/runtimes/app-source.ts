/**
 * A tiny app for the process runtime tests, written into a release tree as `app.cjs`: an HTTP
 * server on PORT; CRASH=1 exits at once, IGNORE_TERM=1 ignores SIGTERM, UNHEALTHY=1 answers 500,
 * NOISE=<n> writes n lines to stdout.
 */
export const APP_SOURCE =
  "const http = require('node:http');\nif (process.env.CRASH === '1') {\n  console.error('crashing on purpose');\n  process.exit(7);\n}\nif (process.env.IGNORE_TERM === '1') process.on('SIGTERM', () => console.log('ignoring SIGTERM'));\nfor (let i = 0; i < Number(process.env.NOISE ?? 0); i++) console.log(`line ${i} ${'x'.repeat(80)}`);\nconst server = http.createServer((req, res) => {\n  res.statusCode = process.env.UNHEALTHY === '1' ? 500 : 200;\n  res.end(req.url);\n});\nserver.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));\n";
