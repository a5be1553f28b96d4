// Holds the served model: loads it once, warms it up, and scores feeds through the micro-batcher.
import {
  Inject,
  Injectable,
  OnApplicationShutdown,
  ServiceUnavailableException,
  UnprocessableEntityException,
} from '@nestjs/common';
import type { Logger } from 'pino';

import type { AppConfig } from '../config/app-config.js';
import { LifecycleService } from '../lifecycle/lifecycle.service.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { type Feeds, MicroBatcher } from '../scoring/micro-batcher.js';
import { APP_CONFIG, ROOT_LOGGER } from '../tokens.js';
import { type LoadedModel, loadModel, runSession, warmUpFeeds } from './model-loader.js';

export interface ModelDescription {
  name: string;
  version: string;
  description?: string;
  sha256: string;
  file: string;
  sizeBytes: number;
  signature: LoadedModel['signature'];
  batching: { enabled: boolean; maxBatchRows: number; maxWaitMicros: number };
  loadedAt: string;
  loadMillis: number;
  warmUpMillis: number;
  imageLabels: Record<string, string>;
}

@Injectable()
export class ModelService implements OnApplicationShutdown {
  private loaded?: LoadedModel;
  private batcher?: MicroBatcher;
  private description?: ModelDescription;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    @Inject(LifecycleService) private readonly lifecycle: LifecycleService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {}

  /** Loads the model and runs one warm-up inference; readiness turns true only after both. */
  async load(): Promise<ModelDescription> {
    const started = performance.now();
    const model = await loadModel(this.config);
    const loadMillis = performance.now() - started;
    const warmUpStarted = performance.now();
    try {
      await runSession(model.session, warmUpFeeds(model.signature));
    } catch (error) {
      await model.session.release();
      throw new Error(`the warm-up inference (zeros, open dimensions set to 1) failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const warmUpMillis = performance.now() - warmUpStarted;
    const batchingEnabled = this.config.batching.enabled && model.batchable;
    this.batcher = new MicroBatcher(
      (feeds) => runSession(model.session, feeds),
      { ...this.config.batching, enabled: batchingEnabled, pendingArrivals: () => this.lifecycle.pendingArrivals },
      this.metrics,
    );
    this.loaded = model;
    this.description = {
      name: model.name,
      version: model.version,
      description: model.description,
      sha256: model.sha256,
      file: model.filePath,
      sizeBytes: model.sizeBytes,
      signature: model.signature,
      batching: {
        enabled: batchingEnabled,
        maxBatchRows: this.config.batching.maxBatchRows,
        maxWaitMicros: this.config.batching.maxWaitMicros,
      },
      loadedAt: new Date().toISOString(),
      loadMillis: Math.round(loadMillis * 100) / 100,
      warmUpMillis: Math.round(warmUpMillis * 100) / 100,
      imageLabels: this.config.imageLabels,
    };
    this.metrics.setModel(model.name, model.version, model.sha256);
    if (this.config.batching.enabled && !model.batchable) {
      this.logger.warn('micro-batching is off for this model: not every input and output has an open first dimension');
    }
    this.lifecycle.markReady();
    return this.description;
  }

  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  /** The loaded model; a 503 while it is still loading. */
  get model(): LoadedModel {
    if (this.loaded === undefined) throw new ServiceUnavailableException('the model is still loading; retry shortly');
    return this.loaded;
  }

  get info(): ModelDescription {
    if (this.description === undefined)
      throw new ServiceUnavailableException('the model is still loading; retry shortly');
    return this.description;
  }

  /** Scores checked feeds. A run that fails on input that passed the signature checks is a 422. */
  async infer(feeds: Feeds): Promise<Feeds> {
    if (this.batcher === undefined) throw new ServiceUnavailableException('the model is still loading; retry shortly');
    try {
      return await this.batcher.submit(feeds);
    } catch (error) {
      this.logger.warn({ err: error }, 'the model failed on an input that passed the signature checks');
      throw new UnprocessableEntityException(`the model could not score this input: ${(error as Error).message}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loaded?.session.release();
    this.loaded = undefined;
    this.batcher = undefined;
  }
}
