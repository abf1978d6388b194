export * from './keys.js';
export * from './metadata.js';
export * from './target.js';
export * from './key-file.js';
export * from './successors.js';
export * from './model-errors.js';
export * from './api.js';
export * from './image-root.js';
