export { readAssignment, verifyAssignment } from './verify-assignment.js';
export type { Assignment, VerifiedRelease, VerifyAssignmentOptions } from './verify-assignment.js';
export {
  provisionTrustedRoot,
  provisionTrustedRootInMemory,
  TrustedRepository,
} from './trusted-repository.js';
export { MemoryMetadata } from './memory-metadata.js';
export type { RefreshOutcome, TrustedRepositoryOptions } from './trusted-repository.js';
export type { FetchOptions } from './fetcher.js';
export { tufFailureReport } from './failure-report.js';
export { downloadFirstRoot, ROOT_MAX_BYTES } from './first-root.js';
