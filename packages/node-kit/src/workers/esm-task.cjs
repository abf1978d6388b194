'use strict';
// The entry piscina loads in each worker thread (see pool.ts). piscina loads a worker module with
// require() first; on Node >= 20.19 require() loads an ES module synchronously, and a worker ended
// while doing so (a pool closed right after its first task) aborts the whole process with a V8
// fatal error ("IsGraphAsync must be used on an instantiated module"). This CommonJS entry loads
// the task module with import() instead, which fails like any promise.
const { workerData } = require('piscina');

// Loaded as the worker starts (as piscina's own require() would), not at its first task: a
// device's first delta rebuild must not wait for the module graph.
const loaded = import(workerData.module).then((m) => m.default);
// A failed load fails each task that asks for it, never the process.
loaded.catch(() => undefined);

module.exports = function runTask(task) {
  return loaded.then((run) => run(task));
};
