import assert from 'node:assert/strict';

import { type Feeds, MicroBatcher } from '../../src/scoring/micro-batcher.js';

/** A fake session: output "double" = 2 × input "x" row by row; fails when any value is negative. */
function recordingRunner() {
  const calls: number[] = [];
  const run = async (feeds: Feeds): Promise<Feeds> => {
    const x = feeds.x;
    calls.push(x.dims[0]);
    const data = x.data as Float32Array;
    if (data.some((v) => v < 0)) throw new Error('negative input');
    return { double: { type: 'float32', dims: [...x.dims], data: data.map((v) => v * 2) } };
  };
  return { calls, run };
}

function rows(...values: number[][]): Feeds {
  return { x: { type: 'float32', dims: [values.length, values[0].length], data: Float32Array.from(values.flat()) } };
}

const options = { enabled: true, maxBatchRows: 64, maxWaitMicros: 2000 };

describe('MicroBatcher', () => {
  it('joins requests that arrive while a run is under way into one run, and splits the results back', async () => {
    const { calls, run } = recordingRunner();
    const batcher = new MicroBatcher(run, options);
    const results = await Promise.all([
      batcher.submit(rows([1, 1])),
      batcher.submit(rows([2, 2], [3, 3])),
      batcher.submit(rows([4, 4])),
      batcher.submit(rows([5, 5])),
    ]);
    // The first runs at once; the other three queue behind it and run together.
    assert.deepEqual(calls, [1, 4]);
    assert.deepEqual(
      results.map((r) => [r.double.dims, Array.from(r.double.data as Float32Array)]),
      [
        [
          [1, 2],
          [2, 2],
        ],
        [
          [2, 2],
          [4, 4, 6, 6],
        ],
        [
          [1, 2],
          [8, 8],
        ],
        [
          [1, 2],
          [10, 10],
        ],
      ],
    );
  });

  it('never fails a request for its neighbour: a failed batch is retried request by request', async () => {
    const { calls, run } = recordingRunner();
    const batcher = new MicroBatcher(run, options);
    const outcomes = await Promise.allSettled([
      batcher.submit(rows([1, 1])),
      batcher.submit(rows([2, 2])),
      batcher.submit(rows([-1, 0])),
      batcher.submit(rows([3, 3])),
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual(
      Array.from((outcomes[3] as PromiseFulfilledResult<Feeds>).value.double.data as Float32Array),
      [6, 6],
    );
    assert.deepEqual(calls, [1, 3, 1, 1, 1]);
  });

  it('keeps batches under maxBatchRows and never mixes shapes', async () => {
    const { calls, run } = recordingRunner();
    const batcher = new MicroBatcher(run, { ...options, maxBatchRows: 3 });
    const wide = { x: { type: 'float32' as const, dims: [1, 3], data: Float32Array.from([1, 1, 1]) } };
    await Promise.all([
      batcher.submit(rows([0, 0])),
      batcher.submit(rows([1, 1], [1, 1])),
      batcher.submit(wide),
      batcher.submit(rows([2, 2])),
      batcher.submit(rows([3, 3])),
    ]);
    assert.deepEqual(calls, [1, 3, 1, 1]);
  });

  it('runs every request alone when switched off', async () => {
    const { calls, run } = recordingRunner();
    const batcher = new MicroBatcher(run, { ...options, enabled: false });
    await Promise.all([batcher.submit(rows([1, 1])), batcher.submit(rows([2, 2])), batcher.submit(rows([3, 3]))]);
    assert.deepEqual(calls, [1, 1, 1]);
  });

  it('waits for requests known to be arriving, but no longer than maxWaitMicros', async () => {
    const { calls, run } = recordingRunner();
    let arriving = 1;
    const batcher = new MicroBatcher(run, { ...options, maxWaitMicros: 200_000, pendingArrivals: () => arriving });
    const first = batcher.submit(rows([1, 1]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(calls, [], 'the first request waits for the one arriving');
    arriving = 0;
    const second = batcher.submit(rows([2, 2]));
    await Promise.all([first, second]);
    assert.deepEqual(calls, [2]);

    arriving = 5;
    const started = performance.now();
    const waitingBatcher = new MicroBatcher(run, {
      ...options,
      maxWaitMicros: 30_000,
      pendingArrivals: () => arriving,
    });
    await waitingBatcher.submit(rows([3, 3]));
    const waited = performance.now() - started;
    assert.ok(waited >= 25 && waited < 1000, `waited ${waited} ms`);
  });

  it('scores each request alone when an output has no batch dimension to split', async () => {
    const calls: number[] = [];
    const batcher = new MicroBatcher(async (feeds) => {
      calls.push(feeds.x.dims[0]);
      return {
        total: {
          type: 'float32',
          dims: [1],
          data: Float32Array.of((feeds.x.data as Float32Array).reduce((a, b) => a + b, 0)),
        },
      };
    }, options);
    const results = await Promise.all([
      batcher.submit(rows([1, 1])),
      batcher.submit(rows([2, 2])),
      batcher.submit(rows([3, 3])),
    ]);
    assert.deepEqual(
      results.map((r) => (r.total.data as Float32Array)[0]),
      [2, 4, 6],
    );
    assert.deepEqual(calls, [1, 2, 1, 1]);
  });
});
