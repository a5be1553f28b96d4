// Prometheus metrics: HTTP traffic by route and status, inference latency and batch sizes, model identity,
// and the process metrics of prom-client. Each app instance has its own registry.
import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { BatchObserver } from '../scoring/micro-batcher.js';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

@Injectable()
export class MetricsService implements BatchObserver {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by route template, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from request received to response sent, by route template, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  /** HTTP requests received and not yet answered: a plain count on the request path, read by the gauge at scrape time. */
  requestsInFlight = 0;

  readonly inFlight: Gauge = new Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests received and not yet answered.',
    registers: [this.registry],
    collect: () => {
      this.inFlight.set(this.requestsInFlight);
    },
  });

  readonly inferenceDuration = new Histogram({
    name: 'model_inference_duration_seconds',
    help: 'Duration of one onnxruntime session.run (one batch).',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly batchRows = new Histogram({
    name: 'model_batch_size',
    help: 'Rows scored by one session.run.',
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });

  readonly batchRequests = new Histogram({
    name: 'model_batch_requests',
    help: 'Requests joined into one session.run by micro-batching.',
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });

  readonly rowsScored = new Counter({
    name: 'model_rows_scored_total',
    help: 'Rows scored by the model.',
    registers: [this.registry],
  });

  readonly modelInfo = new Gauge({
    name: 'model_info',
    help: 'The model being served (value 1), identified by its labels.',
    labelNames: ['name', 'version', 'sha256'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  ran(rows: number, requests: number, seconds: number): void {
    this.inferenceDuration.observe(seconds);
    this.batchRows.observe(rows);
    this.batchRequests.observe(requests);
    this.rowsScored.inc(rows);
  }

  setModel(name: string, version: string, sha256: string): void {
    this.modelInfo.reset();
    this.modelInfo.set({ name, version, sha256 }, 1);
  }
}
