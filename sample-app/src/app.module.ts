import { DynamicModule, Module } from '@nestjs/common';
import type { Logger } from 'pino';

import { ApiKeyGuard } from './auth/api-key.guard.js';
import { ApiKeyStore } from './auth/api-keys.js';
import type { AppConfig } from './config/app-config.js';
import { HealthController } from './health/health.controller.js';
import { InferenceProtocolController } from './inference-protocol/v2.controller.js';
import { LifecycleService } from './lifecycle/lifecycle.service.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import { ModelService } from './model/model.service.js';
import { ScoringController } from './scoring/scoring.controller.js';
import { APP_CONFIG, ROOT_LOGGER } from './tokens.js';

@Module({})
export class AppModule {
  /** The config, logger and key store are made before Nest starts, so bad config fails before any port opens. */
  static register(config: AppConfig, logger: Logger, apiKeys: ApiKeyStore): DynamicModule {
    return {
      module: AppModule,
      controllers: [ScoringController, InferenceProtocolController, HealthController, MetricsController],
      providers: [
        { provide: APP_CONFIG, useValue: config },
        { provide: ROOT_LOGGER, useValue: logger },
        { provide: ApiKeyStore, useValue: apiKeys },
        ApiKeyGuard,
        LifecycleService,
        MetricsService,
        ModelService,
      ],
    };
  }
}
