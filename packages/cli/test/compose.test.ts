/**
 * `release push --compose`: the compose file is parsed with a real YAML parser, normalized to the
 * docker runtime's configuration, and every key the runtime does not support is refused at push
 * time with the list of them; the image references resolve to ids on a real (private) dockerd.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FlotillaError, runtimeConfigProblems } from '@flotilla/protocol';
import { dockerdAvailable, importBusyboxImage, startTestDockerd, tempDir } from '@flotilla/testkit';
import { durationMs, interpolate, readCompose, shellSplit } from '../src/push/compose.js';
import { composeReleaseConfig } from '../src/push/release-config.js';

const SHOP = `
name: shop
services:
  web:
    image: shop/web:2
    command: httpd -f -p "8080" -h /www
    environment:
      MODE: production
      WORKERS: 4
    env_file: web.env
    ports: ["127.0.0.1:8080:8080", "9000/udp"]
    volumes:
      - data:/data
      - ./uploads:/uploads:ro
    restart: unless-stopped
    healthcheck:
      test: wget -q -O /dev/null http://127.0.0.1:8080/
      interval: 1m30s
      timeout: 500ms
      retries: 3
    labels: ["tier=front"]
    user: "1000"
    cap_drop: [ALL]
    logging:
      driver: json-file
      options: { max-size: 10m, max-file: 3 }
    deploy:
      update_config: { order: start-first }
  worker:
    image: shop/web:2
    entrypoint: ["/bin/worker"]
    depends_on:
      web: { condition: service_healthy }
    devices: ["/dev/ttyUSB0"]
volumes:
  data: {}
x-notes: ignored
`;

void test('a compose file becomes the docker runtime configuration', async (t) => {
  const dir = tempDir(t, 'flt-compose-');
  writeFileSync(join(dir, 'compose.yml'), SHOP);
  writeFileSync(join(dir, 'web.env'), '# comment\nMODE=dev\nTOKEN="abc"\n');
  const { config, refs } = await readCompose(dir, 'compose.yml');
  assert.deepEqual(refs, ['shop/web:2']);
  const web = config.docker.compose.services.web;
  assert.deepEqual(web?.command, ['httpd', '-f', '-p', '8080', '-h', '/www']);
  assert.deepEqual(web?.environment, { MODE: 'production', WORKERS: '4', TOKEN: 'abc' });
  assert.deepEqual(web?.ports, [
    { target: 8080, published: 8080, host_ip: '127.0.0.1' },
    { target: 9000, protocol: 'udp' },
  ]);
  assert.deepEqual(web?.volumes, [
    { type: 'volume', source: 'data', target: '/data' },
    { type: 'bind', source: 'uploads', target: '/uploads', read_only: true },
  ]);
  assert.deepEqual(web?.healthcheck, {
    test: ['CMD-SHELL', 'wget -q -O /dev/null http://127.0.0.1:8080/'],
    interval_ms: 90_000,
    timeout_ms: 500,
    retries: 3,
  });
  assert.deepEqual(web?.logging, { driver: 'json-file', options: { 'max-size': '10m', 'max-file': '3' } });
  assert.deepEqual(config.docker.strategy, { web: 'start-stop' });
  assert.deepEqual(config.docker.compose.services.worker?.depends_on, {
    web: { condition: 'service_healthy' },
  });
  assert.deepEqual(config.docker.compose.services.worker?.devices, [
    { source: '/dev/ttyUSB0', target: '/dev/ttyUSB0' },
  ]);
  assert.deepEqual(config.docker.compose.volumes, ['data']);
  // With an image id it is a valid configuration, except start-first with a fixed host port.
  config.docker.images = { 'shop/web:2': `sha256:${'a'.repeat(64)}` };
  assert.deepEqual(runtimeConfigProblems('docker', config), [
    'docker.compose.services.web: start-stop cannot publish a fixed host port (the old and new container run side by side)',
  ]);
  delete config.docker.strategy;
  assert.deepEqual(runtimeConfigProblems('docker', config), []);
  // What the schema cannot say: a depends_on cycle, a missing image id, an unknown service.
  config.docker.compose.services.web!.depends_on = { worker: { condition: 'service_started' } };
  assert.deepEqual(runtimeConfigProblems('docker', config), [
    'docker.compose.services: depends_on has a cycle',
  ]);
  delete config.docker.compose.services.web!.depends_on;
  config.docker.images = {};
  config.docker.strategy = { nope: 'start-stop' };
  assert.deepEqual(runtimeConfigProblems('docker', config), [
    'docker.compose.services.web.image: shop/web:2 has no image id in docker.images',
    'docker.compose.services.worker.image: shop/web:2 has no image id in docker.images',
    'docker.strategy.nope: no such service',
  ]);
  assert.match(
    runtimeConfigProblems('docker', { docker: { compose: { services: {} }, images: {}, extra: 1 } }).join(
      '\n',
    ),
    /extra: unknown key/,
  );
  assert.deepEqual(shellSplit(`sh -c 'echo "a b"' x\\ y`), ['sh', '-c', 'echo "a b"', 'x y']);
  assert.equal(durationMs('1h2m3s'), 3_723_000);
  const problems: string[] = [];
  assert.equal(
    interpolate(
      '$$HOME ${TAG} $TAG ${NOPE:-dflt} ${EMPTY:-e} ${EMPTY-x}',
      { TAG: '2', EMPTY: '' },
      problems,
      'a',
    ),
    '$HOME 2 2 dflt e ',
  );
  interpolate('${MUST:?set MUST}', {}, problems, 'services.web.image');
  assert.deepEqual(problems, ['services.web.image: MUST: set MUST']);
  assert.equal(durationMs('10 s'), null);
});

void test('push refuses every key the docker runtime does not support, with the list', async (t) => {
  const dir = tempDir(t, 'flt-compose-');
  writeFileSync(
    join(dir, 'compose.yml'),
    `services:
  web:
    build: .
    privileged: true
    network_mode: host
    ports: ["8000-8010:80"]
    volumes: ["/etc:/host-etc", "./../x:/x", "cache:/cache"]
    deploy: { replicas: 3 }
networks:
  front: {}
secrets:
  key: { file: key.txt }
`,
  );
  const error = await readCompose(dir, 'compose.yml').then(
    () => assert.fail('accepted'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof FlotillaError);
  assert.equal(error.code, 'FLT_VALIDATION');
  const problems = (error.details as { problems: string[] }).problems;
  for (const expected of [
    'networks: not supported',
    'secrets: not supported',
    'services.web.build: not supported',
    'services.web.privileged: not supported',
    'services.web.network_mode: not supported',
    'services.web.deploy.replicas: not supported',
  ])
    assert.ok(problems.includes(expected), `${expected} in ${JSON.stringify(problems)}`);
  assert.ok(problems.some((p) => p.includes('8000-8010:80')));
  assert.ok(problems.some((p) => p.includes('/etc') && p.includes('data directory')));
  assert.ok(problems.some((p) => p.includes('./../x')));
  assert.ok(problems.some((p) => p.includes('volume cache is not declared')));
  assert.match(error.message, /services\.web\.privileged: not supported/);
  writeFileSync(join(dir, 'bad.yml'), 'services: [\n');
  await assert.rejects(readCompose(dir, 'bad.yml'), { code: 'FLT_VALIDATION', message: /not valid YAML/ });
});

void test(
  'push resolves compose image references to the ids on the Docker Engine',
  { skip: dockerdAvailable() ? false : 'dockerd or busybox-static is not installed', timeout: 300_000 },
  async (t) => {
    const d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
    t.after(() => d.destroy());
    const id = await importBusyboxImage(d, 'shop/web:2');
    const dir = tempDir(t, 'flt-compose-');
    writeFileSync(
      join(dir, 'compose.yml'),
      'services:\n  web:\n    image: shop/web:2\n  db:\n    image: shop/db:1\n',
    );
    await assert.rejects(composeReleaseConfig(dir, 'compose.yml', dir, d.host), {
      code: 'FLT_IMAGE_MISSING',
      message: /shop\/db:1/,
    });
    writeFileSync(join(dir, 'compose.yml'), 'services:\n  web:\n    image: shop/web:2\n');
    const config = (await composeReleaseConfig(dir, 'compose.yml', dir, d.host)) as {
      docker: { images: Record<string, string> };
    };
    assert.deepEqual(config.docker.images, { 'shop/web:2': id });
  },
);
