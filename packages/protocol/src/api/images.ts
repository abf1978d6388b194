/**
 * The image gateway's operator API (docs/gateway.md "API and CLI"): import container images from a
 * registry onto a platform, list, show, look up (counts as use) and remove them, follow a job.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Id, Timestamp } from './common.js';

export const ImageRoutes = {
  images: '/api/v1/images',
  pull: '/api/v1/images/pull',
  show: '/api/v1/images/show',
  lookup: '/api/v1/images/lookup',
  job: '/api/v1/images/jobs/:id',
  platforms: '/api/v1/images/platforms',
} as const;

/** `[LOCATION/]NAME:TAG`, e.g. `busybox:1.36` or `hub/library/alpine:3.20`. */
export const ImageRef = Type.String({
  minLength: 3,
  maxLength: 255,
  pattern: '^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$',
  description: '[LOCATION/]NAME:TAG (the tag defaults to latest)',
});
export const PlatformName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
});
export const Arch = Type.String({
  minLength: 1,
  maxLength: 32,
  pattern: '^[a-z0-9]+$',
  description: 'amd64, arm64, …',
});
const Principals = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  maxItems: 256,
  uniqueItems: true,
});

export const ImageStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('ready'),
  Type.Literal('failed'),
]);
export type ImageStatus = Static<typeof ImageStatus>;
export const ImageJobState = Type.Union([
  Type.Literal('queued'),
  Type.Literal('running'),
  Type.Literal('done'),
  Type.Literal('failed'),
]);
export type ImageJobState = Static<typeof ImageJobState>;

export const ImageJob = Type.Object({
  id: Id,
  platform: Type.String(),
  image: Type.String(),
  arch: Type.String(),
  state: ImageJobState,
  /** What the job does now: queued, pulling, converting, delivering, done, failed. */
  phase: Type.String(),
  /** 0..1 within the whole job. */
  progress: Type.Number(),
  attempts: Type.Integer(),
  worker: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  startedAt: Type.Union([Timestamp, Type.Null()]),
  finishedAt: Type.Union([Timestamp, Type.Null()]),
});
export type ImageJob = Static<typeof ImageJob>;

export const Image = Type.Object({
  platform: Type.String(),
  /** Canonical `LOCATION/NAME:TAG`. */
  image: Type.String(),
  arch: Type.String(),
  status: ImageStatus,
  /** sha256 of the squashfs file, once ready. */
  id: Type.Union([Type.String(), Type.Null()]),
  /** Where the platform's nodes find the file, once ready. */
  path: Type.Union([Type.String(), Type.Null()]),
  sizeBytes: Type.Union([Type.Integer(), Type.Null()]),
  manifestDigest: Type.Union([Type.String(), Type.Null()]),
  private: Type.Boolean(),
  users: Type.Array(Type.String()),
  groups: Type.Array(Type.String()),
  createdBy: Type.String(),
  createdAt: Timestamp,
  lastUsedAt: Timestamp,
  /** When the gateway removes it unless it is looked up before (null: never). */
  expiresAt: Type.Union([Timestamp, Type.Null()]),
  jobId: Type.Union([Id, Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
});
export type Image = Static<typeof Image>;

export const ImageList = Type.Object({ items: Type.Array(Image) });
export type ImageList = Static<typeof ImageList>;

export const PullImageRequest = Type.Object(
  {
    image: ImageRef,
    platform: Type.Optional(PlatformName),
    arch: Type.Optional(Arch),
    /** A private image is visible only to the listed users and groups (and the platform's admins). */
    private: Type.Optional(Type.Boolean()),
    users: Type.Optional(Principals),
    groups: Type.Optional(Principals),
  },
  { additionalProperties: false },
);
export type PullImageRequest = Static<typeof PullImageRequest>;

/** 200 when the image was already converted, 202 with the (possibly shared) job otherwise. */
export const PullImageResponse = Type.Object({
  image: Image,
  job: Type.Union([ImageJob, Type.Null()]),
});
export type PullImageResponse = Static<typeof PullImageResponse>;

export const ImageQuery = Type.Object(
  { platform: Type.Optional(PlatformName), image: ImageRef, arch: Type.Optional(Arch) },
  { additionalProperties: false },
);
export type ImageQuery = Static<typeof ImageQuery>;

export const ImageListQuery = Type.Object(
  { platform: Type.Optional(PlatformName) },
  { additionalProperties: false },
);
export type ImageListQuery = Static<typeof ImageListQuery>;

export const ImageLookupResponse = Type.Object({
  id: Type.String(),
  path: Type.String(),
  platform: Type.String(),
  image: Type.String(),
  arch: Type.String(),
  expiresAt: Type.Union([Timestamp, Type.Null()]),
});
export type ImageLookupResponse = Static<typeof ImageLookupResponse>;

export const ImagePlatform = Type.Object({
  name: Type.String(),
  access: Type.Union([Type.Literal('local'), Type.Literal('remote'), Type.Literal('fleet')]),
  admins: Type.Array(Type.String()),
  default: Type.Boolean(),
});
export const ImagePlatformList = Type.Object({ items: Type.Array(ImagePlatform) });
export type ImagePlatformList = Static<typeof ImagePlatformList>;
