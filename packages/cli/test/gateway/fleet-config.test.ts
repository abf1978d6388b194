/** The `fleet` access type in the gateway configuration: app and filter required, one platform per app. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGatewayConfig } from '@flotilla/gateway';

const dirs = { dataDir: '/var/lib/flotilla', baseDir: '/etc/flotilla' };

void test('a fleet platform is parsed with its app and filter', () => {
  const problems: string[] = [];
  const config = parseGatewayConfig(
    { platforms: { nodes: { access: { type: 'fleet', app: 'cluster-images', filter: 'tags==cluster' } } } },
    dirs,
    problems,
  );
  assert.deepEqual(problems, []);
  assert.deepEqual(config?.platforms.nodes?.access, {
    type: 'fleet',
    app: 'cluster-images',
    filter: 'tags==cluster',
  });
});

void test('a fleet platform without app or filter, or sharing an app, is refused with every problem listed', () => {
  const problems: string[] = [];
  parseGatewayConfig(
    {
      platforms: {
        a: { access: { type: 'fleet', app: 'bad/app' } },
        b: { access: { type: 'fleet', app: 'imgs', filter: 'tags==b' } },
        c: { access: { type: 'fleet', app: 'imgs', filter: 'tags==c' } },
        d: { access: { type: 'ftp' } },
      },
    },
    dirs,
    problems,
  );
  const text = problems.join('\n');
  assert.match(text, /platforms\.a\.access\.app: required/);
  assert.match(text, /platforms\.a\.access\.filter: required/);
  assert.match(text, /platforms\.c\.access\.app: imgs is already the app of platform b/);
  assert.match(text, /platforms\.d\.access\.type: must be local, remote or fleet/);
});
