/**
 * Runs `task(0) … task(count - 1)` with at most `concurrency` in flight, started in index order.
 * After a failure no further task starts; once every started task has settled, the failure with
 * the lowest index is thrown (so the error reported does not depend on which task finished first
 * among those in flight). Never leaves a rejected promise unobserved.
 */
export async function runBounded(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const failures: { index: number; error: unknown }[] = [];
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failures.push({ index, error });
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.min(concurrency, count); i++) workers.push(worker());
  await Promise.all(workers);
  if (failures.length > 0) throw failures.reduce((a, b) => (b.index < a.index ? b : a)).error;
}

/** `items.map(fn)` with at most `concurrency` calls in flight; results in input order. */
export async function mapBounded<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  await runBounded(items.length, concurrency, async (index) => {
    out[index] = await fn(items[index]!, index);
  });
  return out;
}
