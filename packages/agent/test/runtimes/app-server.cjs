// A tiny app for the process runtime tests: an HTTP server on PORT answering /healthz,
// with behaviours chosen by env: CRASH=1 exits at once, IGNORE_TERM=1 ignores SIGTERM,
// UNHEALTHY=1 answers 500, NOISE=<n> writes n lines to stdout.
const http = require('node:http');
if (process.env.CRASH === '1') {
  console.error('crashing on purpose');
  process.exit(7);
}
if (process.env.IGNORE_TERM === '1') process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
for (let i = 0; i < Number(process.env.NOISE ?? 0); i++) console.log(`line ${i} ${'x'.repeat(80)}`);
const server = http.createServer((req, res) => {
  res.statusCode = process.env.UNHEALTHY === '1' ? 500 : 200;
  res.end(req.url);
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
