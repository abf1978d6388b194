import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isFlotillaError, TufVerificationFailure } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import type { ErrorCode } from '@flotilla/protocol';
import {
  MemoryMetadata,
  provisionTrustedRoot,
  provisionTrustedRootInMemory,
  tufFailureReport,
  verifyAssignment,
} from '../../src/tuf/index.js';
import type { VerifiedRelease } from '../../src/tuf/index.js';
import type { World } from './fixture.js';

/**
 * Where `provision` keeps the trusted metadata: files (the agent), or memory (the fleet
 * simulator; memory-attacks.test.ts runs the attack list that way).
 */
export const trustedIn = { memory: false };

/** Enrollment hands the device both v1 roots. */
export async function provision(w: World): Promise<void> {
  if (trustedIn.memory) {
    w.memory = { image: new MemoryMetadata(), director: new MemoryMetadata() };
    provisionTrustedRootInMemory(w.memory.image, w.image.get('1.root.json'));
    provisionTrustedRootInMemory(w.memory.director, w.director.get('1.root.json'));
    return;
  }
  await provisionTrustedRoot(join(w.metadataDir, 'image'), w.image.get('1.root.json'));
  await provisionTrustedRoot(join(w.metadataDir, 'director'), w.director.get('1.root.json'));
}

export function verify(w: World): Promise<VerifiedRelease[]> {
  return verifyAssignment({
    imageRepoUrl: w.image.url,
    directorRepoUrl: w.director.url,
    metadataDir: w.metadataDir,
    ...(w.memory && { memory: w.memory }),
    fetch: { timeoutMs: 10_000 },
  });
}

/** Asserts verification is refused with `code`, a reason naming the repository and a valid report; returns the details. */
export async function refused(
  w: World,
  code: ErrorCode,
  repository?: 'image' | 'director',
): Promise<Record<string, unknown>> {
  let details: Record<string, unknown> = {};
  await assert.rejects(verify(w), (e: unknown) => {
    assert.ok(isFlotillaError(e), `a FlotillaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    details = (e.details ?? {}) as Record<string, unknown>;
    if (repository) assert.equal(details.repository, repository, e.message);
    const report = tufFailureReport(e);
    assert.ok(Value.Check(TufVerificationFailure, report), 'the report matches the wire schema');
    assert.equal(report.code, code);
    return true;
  });
  return details;
}
