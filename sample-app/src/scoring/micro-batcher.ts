// Dynamic micro-batching: concurrent requests to a model with an open first (batch) dimension are joined
// into one session.run and the outputs split back per request.
//
// onnxruntime-node runs a session on the main thread, so one run at a time is started here: while it runs,
// new requests queue up and form the next batch. A batch is flushed when it reaches maxBatchRows, when no
// more requests are known to be on their way (so a lone request waits for nobody), or when its oldest
// request has waited maxWaitMicros. A batch that fails is retried request by request, so one bad request
// never fails its neighbours.
import { allocate, type HostTensor, type TensorData } from '../model/tensor-types.js';

export type Feeds = Record<string, HostTensor>;
export type SessionRunner = (feeds: Feeds) => Promise<Feeds>;

export interface BatchObserver {
  /** Called after each session.run with the rows it scored, the requests it served and its duration. */
  ran(rows: number, requests: number, seconds: number): void;
}

export interface MicroBatcherOptions {
  enabled: boolean;
  maxBatchRows: number;
  maxWaitMicros: number;
  /** Requests accepted by the server that have not reached the batcher yet (bodies still arriving or parsing). */
  pendingArrivals?: () => number;
}

interface Job {
  feeds: Feeds;
  rows: number;
  /** Input names and row shapes; worked out only when the job may join a batch (a lone request never needs it). */
  shapeKey?: string;
  enqueuedAt: bigint;
  resolve: (outputs: Feeds) => void;
  reject: (error: unknown) => void;
}

export class MicroBatcher {
  private readonly queue: Job[] = [];
  private running = false;
  private flushScheduled = false;
  private readonly maxWaitNanos: bigint;

  constructor(
    private readonly runSession: SessionRunner,
    private readonly options: MicroBatcherOptions,
    private readonly observer?: BatchObserver,
  ) {
    this.maxWaitNanos = BigInt(options.maxWaitMicros) * 1000n;
  }

  /** Requests waiting for a run, for the in-flight accounting of shutdown and tests. */
  get queuedRequests(): number {
    return this.queue.length;
  }

  submit(feeds: Feeds): Promise<Feeds> {
    return new Promise<Feeds>((resolve, reject) => {
      const job: Job = {
        feeds,
        rows: rowsOf(feeds),
        enqueuedAt: process.hrtime.bigint(),
        resolve,
        reject,
      };
      if (!this.options.enabled) {
        void this.execute([job]);
        return;
      }
      this.queue.push(job);
      // An idle batcher runs at once (a lone request waits for nothing); requests arriving while a run
      // is under way queue up and form the next batch.
      if (!this.running && !this.flushScheduled) this.flush();
    });
  }

  private scheduleFlush(): void {
    if (this.running || this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.running || this.queue.length === 0) return;
    if (this.shouldWaitForMore()) {
      this.flushScheduled = true;
      setImmediate(this.flush);
      return;
    }
    const batch = this.takeBatch();
    this.running = true;
    void this.execute(batch).finally(() => {
      this.running = false;
      this.scheduleFlush();
    });
  };

  private shouldWaitForMore(): boolean {
    const pending = this.options.pendingArrivals?.() ?? 0;
    if (pending <= 0) return false;
    let rows = 0;
    for (const job of this.queue) rows += job.rows;
    if (rows >= this.options.maxBatchRows) return false;
    return process.hrtime.bigint() - this.queue[0].enqueuedAt < this.maxWaitNanos;
  }

  /** The oldest request, and the next ones of the same shape while they fit under maxBatchRows. */
  private takeBatch(): Job[] {
    const first = this.queue.shift()!;
    const batch = [first];
    let rows = first.rows;
    for (let i = 0; i < this.queue.length && rows < this.options.maxBatchRows;) {
      const job = this.queue[i];
      if (shapeKeyOf(job) === shapeKeyOf(first) && rows + job.rows <= this.options.maxBatchRows) {
        batch.push(job);
        rows += job.rows;
        this.queue.splice(i, 1);
      } else {
        i++;
      }
    }
    return batch;
  }

  private async execute(batch: Job[]): Promise<void> {
    if (batch.length === 1) {
      await this.runAlone(batch[0]);
      return;
    }
    const totalRows = batch.reduce((sum, job) => sum + job.rows, 0);
    let outputs: Feeds;
    try {
      outputs = await this.timedRun(
        joinFeeds(
          batch.map((job) => job.feeds),
          totalRows,
        ),
        totalRows,
        batch.length,
      );
    } catch {
      // Some request in the batch made the run fail: run each alone, so only that one gets the error.
      for (const job of batch) await this.runAlone(job);
      return;
    }
    const split = splitOutputs(
      outputs,
      batch.map((job) => job.rows),
    );
    if (split === undefined) {
      // An output without the batch dimension cannot be split by rows: score each request alone.
      for (const job of batch) await this.runAlone(job);
      return;
    }
    batch.forEach((job, index) => job.resolve(split[index]));
  }

  private async runAlone(job: Job): Promise<void> {
    try {
      job.resolve(await this.timedRun(job.feeds, job.rows, 1));
    } catch (error) {
      job.reject(error);
    }
  }

  private async timedRun(feeds: Feeds, rows: number, requests: number): Promise<Feeds> {
    const started = process.hrtime.bigint();
    const outputs = await this.runSession(feeds);
    // Reported on the next tick, so the metrics are not on a response's way out: the promise chain from
    // here to the socket write runs first, and ticks still run before any new I/O (no scrape can miss a run).
    if (this.observer !== undefined)
      process.nextTick(reportRun, this.observer, rows, requests, Number(process.hrtime.bigint() - started) / 1e9);
    return outputs;
  }
}

function reportRun(observer: BatchObserver, rows: number, requests: number, seconds: number): void {
  observer.ran(rows, requests, seconds);
}

/** The first dimension of the input whose name sorts first (batchable inputs all agree on it: checkSameRows). */
function rowsOf(feeds: Feeds): number {
  let first: string | undefined;
  for (const name in feeds) if (first === undefined || name < first) first = name;
  return first === undefined ? 1 : (feeds[first].dims[0] ?? 1);
}

function shapeKeyOf(job: Job): string {
  job.shapeKey ??= Object.keys(job.feeds)
    .sort()
    .map((name) => `${name}:${job.feeds[name].dims.slice(1).join('x')}`)
    .join('|');
  return job.shapeKey;
}

/** Concatenates each input along its first dimension. */
export function joinFeeds(feedsList: Feeds[], totalRows: number): Feeds {
  const joined: Feeds = {};
  for (const name of Object.keys(feedsList[0])) {
    const first = feedsList[0][name];
    const rowSize = first.dims.slice(1).reduce((a, b) => a * b, 1);
    const data = allocate(first.type, totalRows * rowSize);
    let offset = 0;
    for (const feeds of feedsList) {
      const part = feeds[name].data;
      if (Array.isArray(data)) {
        for (let i = 0; i < part.length; i++) data[offset + i] = (part as string[])[i];
      } else {
        (data as Float64Array).set(part as Float64Array, offset);
      }
      offset += part.length;
    }
    joined[name] = { type: first.type, dims: [totalRows, ...first.dims.slice(1)], data };
  }
  return joined;
}

/** Splits every output by rows; undefined when an output's first dimension is not the total rows. */
export function splitOutputs(outputs: Feeds, rowsPerRequest: number[]): Feeds[] | undefined {
  const totalRows = rowsPerRequest.reduce((a, b) => a + b, 0);
  const parts: Feeds[] = rowsPerRequest.map(() => ({}));
  for (const [name, tensor] of Object.entries(outputs)) {
    if (tensor.dims[0] !== totalRows) return undefined;
    const rowSize = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
    let row = 0;
    rowsPerRequest.forEach((rows, index) => {
      const start = row * rowSize;
      const end = (row + rows) * rowSize;
      const data: TensorData = Array.isArray(tensor.data)
        ? tensor.data.slice(start, end)
        : tensor.data.subarray(start, end);
      parts[index][name] = { type: tensor.type, dims: [rows, ...tensor.dims.slice(1)], data };
      row += rows;
    });
  }
  return parts;
}
