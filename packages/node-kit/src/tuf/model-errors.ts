/**
 * The error classes @tufjs/models throws while verifying (its index exports only ValueError). The
 * agent maps them to stable codes; tuf-js and this package share one @tufjs/models instance, so
 * `instanceof` holds (the agent's attack tests would fail if that ever changed).
 */
export {
  CryptoError as TufCryptoError,
  LengthOrHashMismatchError as TufLengthOrHashMismatchError,
  RepositoryError as TufModelRepositoryError,
  UnsignedMetadataError as TufUnsignedMetadataError,
  ValueError as TufModelValueError,
} from '@tufjs/models/dist/error.js';
