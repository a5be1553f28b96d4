import * as tl from 'azure-pipelines-task-lib/task';

import { formatBytes } from './summary';

/**
 * Progress for long transfers: a `##vso[task.setprogress]` and one log line at most every
 * `intervalMs`, with bytes done, rate and an estimate of what is left.
 */
export class ByteProgress {
  private done = 0;
  private lastReport = 0;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly intervalMs = 3000,
    private readonly now: () => number = Date.now,
  ) {
    this.lastReport = this.now();
  }

  get bytesDone(): number {
    return this.done;
  }

  add(bytes: number): void {
    this.done += bytes;
    if (this.now() - this.lastReport >= this.intervalMs) this.report();
  }

  /** A retried range takes back what it had counted. */
  subtract(bytes: number): void {
    this.done = Math.max(0, this.done - bytes);
  }

  report(): void {
    this.lastReport = this.now();
    const seconds = Math.max(0.001, (this.lastReport - this.started) / 1000);
    const rate = this.done / seconds;
    if (this.total && this.total > 0) {
      const percent = Math.min(100, Math.floor((this.done / this.total) * 100));
      const eta = rate > 0 ? Math.ceil((this.total - this.done) / rate) : undefined;
      tl.setProgress(percent, this.label);
      console.log(
        `${this.label}: ${formatBytes(this.done)} of ${formatBytes(this.total)} (${percent}%), ${formatBytes(rate)}/s${eta !== undefined ? `, about ${eta} s left` : ''}`,
      );
    } else {
      console.log(`${this.label}: ${formatBytes(this.done)}, ${formatBytes(rate)}/s`);
    }
  }

  finish(): { bytes: number; ms: number } {
    const ms = this.now() - this.started;
    if (this.total) tl.setProgress(100, this.label);
    return { bytes: this.done, ms };
  }
}

/** For waits with no byte count (rollouts): says what is being waited on, every `intervalMs`. */
export class WaitProgress {
  private lastReport = 0;
  constructor(
    private readonly label: string,
    private readonly intervalMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  update(status: string, percent?: number, force = false): void {
    if (!force && this.now() - this.lastReport < this.intervalMs) return;
    this.lastReport = this.now();
    if (percent !== undefined) tl.setProgress(Math.max(0, Math.min(100, Math.floor(percent))), this.label);
    console.log(`${this.label}: ${status}`);
  }
}
