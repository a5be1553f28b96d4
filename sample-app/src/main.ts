// Entry point: validate config, open the port, load and warm up the model, and drain on SIGTERM.
import 'reflect-metadata';

import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';

import { ApiKeyStore } from './auth/api-keys.js';
import { createApp } from './bootstrap.js';
import { type AppConfig, ConfigError, loadConfig } from './config/app-config.js';
import { LifecycleService } from './lifecycle/lifecycle.service.js';
import { createRootLogger } from './logging/logger.js';
import { ModelService } from './model/model.service.js';
import { resolveModelFile } from './model/model-loader.js';

function fail(logger: Logger, message: string): never {
  logger.fatal(message);
  logger.flush();
  process.exit(1);
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    const logger = createRootLogger('info');
    fail(logger, error instanceof ConfigError ? `refusing to start: ${error.message}` : String(error));
  }
  const logger = createRootLogger(config.logLevel);
  try {
    await resolveModelFile(config.modelPath);
  } catch (error) {
    fail(logger, `refusing to start: ${(error as Error).message}`);
  }
  let apiKeys: ApiKeyStore;
  try {
    apiKeys = new ApiKeyStore(config.apiKeys, config.apiKeysFile, (message) =>
      logger.warn(`API keys not reloaded, keeping the previous ones: ${message}`),
    );
  } catch (error) {
    fail(logger, `refusing to start: ${(error as Error).message}`);
  }
  apiKeys.watch(config.apiKeysReloadMillis);

  const app = await createApp(config, logger, apiKeys);
  await app.listen({ port: config.port, host: config.host });
  const address = app.getHttpServer().address();
  logger.info(
    {
      port: typeof address === 'object' && address ? address.port : config.port,
      auth: apiKeys.enabled ? `${apiKeys.keyCount} key(s)` : 'off',
      batching: config.batching,
      bodyLimitBytes: config.bodyLimitBytes,
    },
    'listening; loading the model',
  );
  installShutdown(app, config, logger);

  try {
    const model = await app.get(ModelService).load();
    logger.info(
      {
        model: model.name,
        version: model.version,
        sha256: model.sha256,
        loadMillis: model.loadMillis,
        warmUpMillis: model.warmUpMillis,
        batching: model.batching.enabled,
      },
      'model loaded and warmed up; ready',
    );
  } catch (error) {
    app.get(LifecycleService).markFailed();
    fail(logger, `refusing to start: ${(error as Error).message}`);
  }
}

/**
 * SIGTERM/SIGINT: readiness turns false at once; after SHUTDOWN_DELAY_MS (time for load balancers to
 * notice) the port closes, requests in flight finish, and the process exits 0. If they do not finish
 * within SHUTDOWN_GRACE_MS the process exits 1 rather than be killed without a word.
 */
function installShutdown(app: NestFastifyApplication, config: AppConfig, logger: Logger): void {
  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const lifecycle = app.get(LifecycleService);
    lifecycle.startDraining();
    logger.info(
      { signal, delayMillis: config.shutdownDelayMillis, graceMillis: config.shutdownGraceMillis },
      'shutting down: not ready; draining requests in flight',
    );
    if (config.shutdownGraceMillis > 0) {
      setTimeout(
        () =>
          fail(
            logger,
            `requests still in flight after SHUTDOWN_GRACE_MS (${config.shutdownGraceMillis} ms); exiting without them`,
          ),
        config.shutdownGraceMillis,
      ).unref();
    }
    if (config.shutdownDelayMillis > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMillis));
    try {
      await app.close();
    } catch (error) {
      fail(logger, `shutdown failed: ${(error as Error).message}`);
    }
    logger.info('drained; exiting');
    logger.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  fail(createRootLogger('info'), `refusing to start: ${(error as Error).stack ?? String(error)}`);
});
