// The service's state for probes and shutdown: loading → ready → draining (or failed).
import { Injectable } from '@nestjs/common';

export type LifecycleState = 'loading' | 'ready' | 'draining' | 'failed';

@Injectable()
export class LifecycleService {
  private current: LifecycleState = 'loading';
  private arriving = 0;

  get state(): LifecycleState {
    return this.current;
  }

  get ready(): boolean {
    return this.current === 'ready';
  }

  get draining(): boolean {
    return this.current === 'draining';
  }

  markReady(): void {
    if (this.current === 'loading') this.current = 'ready';
  }

  markFailed(): void {
    this.current = 'failed';
  }

  startDraining(): void {
    this.current = 'draining';
  }

  /** Scoring requests accepted whose bodies are still being read or checked: the batcher waits for them. */
  get pendingArrivals(): number {
    return this.arriving;
  }

  arrivalStarted(): void {
    this.arriving++;
  }

  arrivalEnded(): void {
    this.arriving--;
  }
}
