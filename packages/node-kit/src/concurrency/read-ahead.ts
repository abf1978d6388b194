/**
 * Ordered reads begun ahead of their consumer. Read one at a time, each read's round trip through
 * libuv's thread pool and back to the event loop is paid in turn, and on a busy loop that dominates
 * reads of files in the page cache: the agent's stream of a 64 MiB image layer waited 350–640 ms
 * on its ~90 reads (17 ms alone), the server's 73-object pack 0.4 s (bench/README.md "containers").
 */

/**
 * Yields `read(item)` for each of `items`, in order, with reads begun ahead of the consumer up to
 * `limit` (the sum of `weight` over the reads begun and not yet yielded; each weighs 1 unless said;
 * one read is always under way). A read that fails is thrown when its turn comes; reads begun ahead
 * of a consumer that stops early are dropped, their failures ignored.
 */
export async function* readAhead<T, R>(
  items: readonly T[],
  read: (item: T) => Promise<R>,
  limit: number,
  weight: (item: T) => number = () => 1,
): AsyncGenerator<R> {
  const ahead: { reading: Promise<R>; weight: number }[] = [];
  let aheadWeight = 0;
  let next = 0;
  for (;;) {
    while (next < items.length && (ahead.length === 0 || aheadWeight < limit)) {
      const item = items[next++]!;
      const reading = read(item);
      reading.catch(() => undefined); // awaited in order below, or dropped with an early stop
      const w = weight(item);
      ahead.push({ reading, weight: w });
      aheadWeight += w;
    }
    const first = ahead.shift();
    if (first === undefined) return;
    aheadWeight -= first.weight;
    yield await first.reading;
  }
}
