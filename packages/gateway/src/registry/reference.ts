import { FlotillaError } from '@flotilla/protocol';
import type { ImageReference } from './types.js';

// The distribution spec's grammar (distribution/reference): path components of lowercase
// alphanumerics joined by separators, tags of word characters up to 128, sha256 digests only.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST = /^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](?::[0-9]{1,5})?$/;
const MAX_REFERENCE = 255 * 2;

function invalid(text: string, why: string): FlotillaError {
  return new FlotillaError('FLT_IMAGE_REF_INVALID', `image reference "${text}" is invalid: ${why}`, {
    details: { reference: text },
  });
}

/**
 * Parses `[registry/]repository[:tag][@sha256:<hex>]`. The first path component is a registry
 * when it contains `.` or `:` or is `localhost` (Docker's rule), or when it is one of
 * `locationNames` (Shifter's `LOCATION/NAME:TAG`, LOCATION a configured location's name; it is
 * returned in `registry`). Without tag and digest the tag is `latest`.
 */
export function parseImageReference(text: string, locationNames: readonly string[] = []): ImageReference {
  if (text.length === 0 || text.length > MAX_REFERENCE) throw invalid(text, 'empty or too long');
  let rest = text;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(text, 'the digest must be sha256:<64 lowercase hex>');
  }
  let registry: string | null = null;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (locationNames.includes(first)) {
      registry = first;
      rest = rest.slice(slash + 1);
    } else if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!HOST.test(first)) throw invalid(text, `"${first}" is not a registry host`);
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(text, `"${tag}" is not a valid tag`);
  }
  if (rest.length === 0 || rest.length > 255) throw invalid(text, 'the repository name is empty or too long');
  for (const component of rest.split('/')) {
    if (!COMPONENT.test(component))
      throw invalid(text, `"${component}" is not a valid repository path component`);
  }
  if (tag === null && digest === null) tag = 'latest';
  return { registry, repository: rest, tag, digest };
}

/** `registry/repository:tag@digest`, the parts that are set. */
export function formatImageReference(ref: ImageReference): string {
  return `${ref.registry === null ? '' : `${ref.registry}/`}${ref.repository}${ref.tag === null ? '' : `:${ref.tag}`}${ref.digest === null ? '' : `@${ref.digest}`}`;
}
