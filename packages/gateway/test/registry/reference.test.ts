import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { formatImageReference, parseImageReference } from '../../src/index.js';

void describe('parseImageReference', () => {
  void it('splits registry, repository, tag and digest by the distribution grammar', () => {
    assert.deepEqual(parseImageReference('busybox'), {
      registry: null,
      repository: 'busybox',
      tag: 'latest',
      digest: null,
    });
    assert.deepEqual(parseImageReference('127.0.0.1:5000/team/app:v1.2'), {
      registry: '127.0.0.1:5000',
      repository: 'team/app',
      tag: 'v1.2',
      digest: null,
    });
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseImageReference(`localhost/app@${digest}`), {
      registry: 'localhost',
      repository: 'app',
      tag: null,
      digest,
    });
    assert.equal(
      formatImageReference(parseImageReference(`reg.example.org/a/b:t@${digest}`)),
      `reg.example.org/a/b:t@${digest}`,
    );
  });

  void it("takes a configured location's name as the registry part (Shifter's LOCATION/NAME:TAG)", () => {
    assert.deepEqual(parseImageReference('dockerhub/library/ubuntu:22.04', ['dockerhub']), {
      registry: 'dockerhub',
      repository: 'library/ubuntu',
      tag: '22.04',
      digest: null,
    });
    assert.equal(parseImageReference('dockerhub/ubuntu').registry, null);
  });

  void it('refuses what the grammar does not allow with FLT_IMAGE_REF_INVALID', () => {
    for (const bad of [
      '',
      'Upper/case',
      'a//b',
      'app:bad tag',
      'app@sha256:short',
      'app@md5:abc',
      'a/../b',
      `x:${'t'.repeat(129)}`,
    ]) {
      assert.throws(
        () => parseImageReference(bad),
        (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_IMAGE_REF_INVALID',
        bad,
      );
    }
  });
});
