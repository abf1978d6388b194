import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { pullImage, resolveImage } from '../../src/index.js';
import type { PulledImage, PullProgress, RegistryLocation } from '../../src/index.js';
import { makeLayer, pushLayout, writeOciLayout } from '../helpers/oci.js';
import type { Layer } from '../helpers/oci.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry, startTokenServer } from '../helpers/services.js';
import type { Registry, TokenServer } from '../helpers/services.js';

const anonymous = (url: string): RegistryLocation => ({ url, auth: { type: 'none' } });

async function rejectsWith(p: Promise<unknown>, code: string): Promise<FlotillaError> {
  try {
    await p;
  } catch (error) {
    assert.ok(error instanceof FlotillaError, `expected a FlotillaError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

void describe('registry client against docker-registry', () => {
  let dir: string;
  let base: Layer;
  let top: Layer;
  let big: Layer;
  let open: Registry;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-gw-pull-'));
    base = await makeLayer([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/tool', content: 'base tool\n', mode: 0o755 },
    ]);
    top = await makeLayer([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/version', content: 'v1\n' },
    ]);
    // Incompressible, so that the gzip blob is large enough to be cut mid-stream.
    big = await makeLayer([{ name: 'data.bin', content: randomBytes(3 * 1024 * 1024) }]);
    open = await startRegistry(join(dir, 'open'), { mode: 'none' });
    await writeOciLayout(join(dir, 'app1'), 'v1', [{ architecture: 'amd64', layers: [base, top] }]);
    await pushLayout(join(dir, 'app1'), 'v1', open.host, 'team/app');
    await writeOciLayout(join(dir, 'other'), 'v1', [{ architecture: 'amd64', layers: [base, big] }]);
    await pushLayout(join(dir, 'other'), 'v1', open.host, 'team/other');
    const arm = await makeLayer([{ name: 'arch', content: 'arm64\n' }]);
    const amd = await makeLayer([{ name: 'arch', content: 'amd64\n' }]);
    await writeOciLayout(join(dir, 'multi'), 'v1', [
      { architecture: 'amd64', layers: [amd] },
      { architecture: 'arm64', layers: [arm] },
    ]);
    await pushLayout(join(dir, 'multi'), 'v1', open.host, 'team/multi');
    await pushLayout(join(dir, 'multi'), 'v1', open.host, 'team/multi-docker', undefined, 'v2s2');
  });

  after(async () => {
    await open?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('pulls a manifest, its config and layers verified into the cache; a second image shares the base layer', async () => {
    const cacheDir = join(dir, 'cache-shared');
    const events: PullProgress[] = [];
    const first = await pullImage('team/app:v1', {
      location: anonymous(open.url),
      cacheDir,
      onProgress: (p) => events.push(p),
    });
    assert.equal(first.layers.length, 2);
    assert.equal(first.config.architecture, 'amd64');
    assert.equal(first.indexDigest, null);
    assert.equal(first.pulledBytes, base.blob.length + top.blob.length);
    assert.ok(events.some((e) => e.phase === 'done'));
    for (const layer of first.layers) assert.ok(layer.path.startsWith(cacheDir));

    const resolved = await resolveImage('team/app:v1', { location: anonymous(open.url) });
    assert.equal(
      resolved.manifestDigest,
      first.manifestDigest,
      'resolving tells the image apart without its layers',
    );
    assert.deepEqual(
      resolved.layers.map((l) => [l.digest, l.size]),
      first.layers.map((l) => [l.digest, l.size]),
    );

    const again = await pullImage('team/app:v1', { location: anonymous(open.url), cacheDir });
    assert.equal(again.pulledBytes, 0, 'a second pull of the same image downloads no layer');
    assert.equal(again.manifestDigest, first.manifestDigest);

    const other = await pullImage('team/other:v1', { location: anonymous(open.url), cacheDir });
    assert.equal(other.pulledBytes, big.blob.length, 'only the layer the cache lacks is downloaded');
    assert.equal(other.layers[0]?.path, first.layers[0]?.path);
  });

  void it('picks the asked platform from an OCI index and refuses one it lacks', async () => {
    const cacheDir = join(dir, 'cache-multi');
    const arm: PulledImage = await pullImage('team/multi:v1', {
      location: anonymous(open.url),
      cacheDir,
      platform: { architecture: 'arm64' },
    });
    assert.equal(arm.platform.architecture, 'arm64');
    assert.equal(arm.config.architecture, 'arm64');
    assert.notEqual(arm.indexDigest, null);
    const amd = await pullImage('team/multi:v1', { location: anonymous(open.url), cacheDir });
    assert.equal(amd.config.architecture, 'amd64');
    assert.notEqual(amd.manifestDigest, arm.manifestDigest);
    const err = await rejectsWith(
      pullImage('team/multi:v1', {
        location: anonymous(open.url),
        cacheDir,
        platform: { architecture: 's390x' },
      }),
      'FLT_REGISTRY_PLATFORM_MISSING',
    );
    assert.match(err.message, /arm64/);
  });

  void it('reads Docker schema 2 manifests and manifest lists as well', async () => {
    const cacheDir = join(dir, 'cache-docker');
    const arm = await pullImage('team/multi-docker:v1', {
      location: anonymous(open.url),
      cacheDir,
      platform: { architecture: 'arm64', variant: 'v8' },
    });
    assert.equal(arm.manifestMediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(arm.config.architecture, 'arm64');
    assert.equal(arm.layers[0]?.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  });

  void it('shares one download between concurrent pulls of the same image', async () => {
    const cacheDir = join(dir, 'cache-concurrent');
    const pulls = await Promise.all(
      [1, 2, 3].map(() => pullImage('team/other:v1', { location: anonymous(open.url), cacheDir })),
    );
    assert.equal(
      pulls.reduce((sum, p) => sum + p.pulledBytes, 0),
      base.blob.length + big.blob.length,
      'each layer is downloaded once',
    );
    const paths = pulls.map((p) => p.layers.map((l) => l.path));
    assert.deepEqual(paths[1], paths[0]);
    assert.deepEqual(paths[2], paths[0]);
  });

  void it('fetches several blobs at once, at most `concurrency`, and keeps the layers in manifest order', async () => {
    const layers = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => makeLayer([{ name: `layer${i}`, content: randomBytes(64 * 1024) }])),
    );
    await writeOciLayout(join(dir, 'five'), 'v1', [{ architecture: 'amd64', layers }]);
    await pushLayout(join(dir, 'five'), 'v1', open.host, 'team/five');
    // A proxy that holds each blob answer until 3 blob requests are waiting (a barrier): the pull
    // gets through only if it asks for 3 at once; a one-at-a-time pull is released after 10 s.
    let waiting: (() => void)[] = [];
    let inFlight = 0;
    let most = 0;
    const server = createServer((req, res) => {
      const blob = /\/blobs\/sha256:/.test(req.url ?? '');
      const forward = async (): Promise<void> => {
        const accept = req.headers.accept;
        const up = await fetch(`${open.url}${req.url ?? '/'}`, {
          method: req.method ?? 'GET',
          headers: typeof accept === 'string' ? { accept } : {},
        });
        const body = Buffer.from(await up.arrayBuffer());
        const headers: Record<string, string> = {};
        up.headers.forEach((v, k) => {
          if (!['transfer-encoding', 'connection', 'content-encoding', 'content-length'].includes(k))
            headers[k] = v;
        });
        res.writeHead(up.status, headers);
        res.end(body);
      };
      if (!blob) return void forward();
      inFlight++;
      most = Math.max(most, inFlight);
      res.on('close', () => inFlight--);
      waiting.push(() => void forward());
      if (waiting.length >= 3) {
        const go = waiting;
        waiting = [];
        for (const release of go) release();
      }
    });
    const fallback = setInterval(() => {
      const go = waiting;
      waiting = [];
      for (const release of go) release();
    }, 10_000);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const pulled = await pullImage('team/five:v1', {
        location: anonymous(url),
        cacheDir: join(dir, 'cache-five'),
        concurrency: 3,
      });
      assert.equal(most, 3, 'three blobs at once, never more');
      assert.deepEqual(
        pulled.layers.map((l) => l.digest),
        layers.map((l) => `sha256:${l.digestHex}`),
      );
      assert.equal(
        pulled.pulledBytes,
        layers.reduce((sum, l) => sum + l.blob.length, 0),
      );
    } finally {
      clearInterval(fallback);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  void it('answers FLT_REGISTRY_IMAGE_NOT_FOUND for an unknown tag and FLT_IMAGE_REF_INVALID for a bad reference', async () => {
    const cacheDir = join(dir, 'cache-missing');
    await rejectsWith(
      pullImage('team/app:nope', { location: anonymous(open.url), cacheDir }),
      'FLT_REGISTRY_IMAGE_NOT_FOUND',
    );
    await rejectsWith(
      pullImage('Team/App:v1', { location: anonymous(open.url), cacheDir }),
      'FLT_IMAGE_REF_INVALID',
    );
    await rejectsWith(
      pullImage('team/app:v1', { location: anonymous('http://127.0.0.1:1'), cacheDir }),
      'FLT_REGISTRY_UNREACHABLE',
    );
  });

  void it('resumes a blob download cut mid-stream with a Range request', async () => {
    let cuts = 0;
    const proxy = await startProxy(open.url, (req) => {
      if (
        req.url?.includes('/blobs/') &&
        !req.headers.range &&
        cuts === 0 &&
        req.url.includes(big.digestHex)
      ) {
        cuts++;
        return { kind: 'cut', afterBytes: Math.floor(big.blob.length / 2) };
      }
      return null;
    });
    try {
      const cacheDir = join(dir, 'cache-cut');
      const image = await pullImage('team/other:v1', { location: anonymous(proxy.url), cacheDir });
      assert.equal(cuts, 1);
      const resumed = proxy.requests.filter((r) => r.range !== null);
      assert.equal(resumed.length, 1, 'one resumed request');
      assert.match(resumed[0]?.range ?? '', /^bytes=[1-9][0-9]*-$/);
      assert.equal(image.layers[1]?.size, big.blob.length);
      assert.deepEqual(await readdir(join(cacheDir, 'partial')), [], 'no partial download left');
    } finally {
      await proxy.stop();
    }
  });

  void it("after a crash, resumes the partial blob it finds and takes over the dead holder's lock", async () => {
    const cacheDir = join(dir, 'cache-crash');
    await mkdir(join(cacheDir, 'partial'), { recursive: true });
    const half = Math.floor(big.blob.length / 2);
    await writeFile(join(cacheDir, 'partial', big.digestHex), big.blob.subarray(0, half));
    // A pid that cannot be alive: above the kernel's pid_max.
    await writeFile(join(cacheDir, 'partial', `${big.digestHex}.lock`), `${hostname()} 99999999`);
    const proxy = await startProxy(open.url, () => null);
    try {
      const image = await pullImage('team/other:v1', { location: anonymous(proxy.url), cacheDir });
      assert.equal(image.layers[1]?.size, big.blob.length);
      const ranged = proxy.requests.filter((r) => r.path.includes(big.digestHex));
      assert.deepEqual(
        ranged.map((r) => r.range),
        [`bytes=${half}-`],
        'only the missing half is asked for',
      );
      assert.deepEqual(await readdir(join(cacheDir, 'partial')), []);
    } finally {
      await proxy.stop();
    }
  });

  void it('refuses a blob whose bytes do not match its digest and keeps nothing of it', async () => {
    const proxy = await startProxy(open.url, (req) =>
      req.url?.includes(big.digestHex) ? { kind: 'corrupt' } : null,
    );
    try {
      const cacheDir = join(dir, 'cache-corrupt');
      await rejectsWith(
        pullImage('team/other:v1', { location: anonymous(proxy.url), cacheDir }),
        'FLT_REGISTRY_DIGEST_MISMATCH',
      );
      const cached = await readdir(join(cacheDir, 'blobs', 'sha256'));
      assert.ok(!cached.includes(big.digestHex));
      assert.deepEqual(await readdir(join(cacheDir, 'partial')), []);
    } finally {
      await proxy.stop();
    }
  });

  void it('gives up on a registry that stops sending (idle timeout) and on a layer over the size bound', async () => {
    const proxy = await startProxy(open.url, (req) =>
      req.url?.includes(big.digestHex) ? { kind: 'stall' } : null,
    );
    try {
      const cacheDir = join(dir, 'cache-stall');
      await rejectsWith(
        pullImage('team/other:v1', {
          location: anonymous(proxy.url),
          cacheDir,
          limits: { idleTimeoutMs: 300, maxResumes: 1 },
        }),
        'FLT_REGISTRY_TIMEOUT',
      );
    } finally {
      await proxy.stop();
    }
    await rejectsWith(
      pullImage('team/other:v1', {
        location: anonymous(open.url),
        cacheDir: join(dir, 'cache-big'),
        limits: { maxLayerBytes: 1024 },
      }),
      'FLT_LIMIT_EXCEEDED',
    );
  });
});

void describe('registry authentication', () => {
  let dir: string;
  let layer: Layer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-gw-auth-'));
    layer = await makeLayer([{ name: 'hello', content: 'hello\n' }]);
    await writeOciLayout(join(dir, 'img'), 'v1', [{ architecture: 'amd64', layers: [layer] }]);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('basic auth (htpasswd): the right password pulls; a wrong or missing one is FLT_REGISTRY_AUTH_FAILED without the password in the error', async () => {
    const secret = 'S3cret-basic-pass';
    const reg = await startRegistry(join(dir, 'basic'), {
      mode: 'htpasswd',
      username: 'puller',
      password: secret,
    });
    try {
      await pushLayout(join(dir, 'img'), 'v1', reg.host, 'private/img', `puller:${secret}`);
      const cacheDir = join(dir, 'cache-basic');
      const image = await pullImage('private/img:v1', {
        location: { url: reg.url, auth: { type: 'basic', username: 'puller', password: secret } },
        cacheDir,
      });
      assert.equal(image.layers.length, 1);
      const wrong = 'wrong-password-xyz';
      const err = await rejectsWith(
        pullImage('private/img:v1', {
          location: { url: reg.url, auth: { type: 'basic', username: 'puller', password: wrong } },
          cacheDir,
        }),
        'FLT_REGISTRY_AUTH_FAILED',
      );
      const shown = JSON.stringify({ message: err.message, body: err.toJSON(), stack: err.stack });
      assert.ok(!shown.includes(wrong) && !shown.includes(Buffer.from(`puller:${wrong}`).toString('base64')));
      await rejectsWith(
        pullImage('private/img:v1', { location: anonymous(reg.url), cacheDir }),
        'FLT_REGISTRY_AUTH_FAILED',
      );
    } finally {
      await reg.stop();
    }
  });

  void it('bearer tokens: the WWW-Authenticate challenge leads to the token server, which gets the credentials', async () => {
    const secret = 'S3cret-token-pass';
    let tokens: TokenServer | undefined;
    let reg: Registry | undefined;
    try {
      tokens = await startTokenServer(join(dir, 'tokens'), 'puller', secret);
      reg = await startRegistry(join(dir, 'token'), {
        mode: 'token',
        realm: tokens.realm,
        service: tokens.service,
        issuer: tokens.issuer,
        certPath: tokens.certPath,
      });
      await pushLayout(join(dir, 'img'), 'v1', reg.host, 'private/img', `puller:${secret}`);
      const issuedBefore = tokens.issued;
      const image = await pullImage('private/img:v1', {
        location: { url: reg.url, auth: { type: 'token', username: 'puller', password: secret } },
        cacheDir: join(dir, 'cache-token'),
      });
      assert.equal(image.layers.length, 1);
      assert.equal(tokens.issued - issuedBefore, 1, 'one token serves the whole pull');
      const err = await rejectsWith(
        pullImage('private/img:v1', {
          location: { url: reg.url, auth: { type: 'token', username: 'puller', password: 'nope-nope' } },
          cacheDir: join(dir, 'cache-token2'),
        }),
        'FLT_REGISTRY_AUTH_FAILED',
      );
      assert.ok(!JSON.stringify(err.toJSON()).includes('nope-nope'));
    } finally {
      await reg?.stop();
      await tokens?.stop();
    }
  });
});
