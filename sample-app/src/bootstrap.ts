// Builds the Nest application on Fastify with the service's HTTP settings, hooks and error filter.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import type { Logger } from 'pino';

import { AppModule } from './app.module.js';
import type { ApiKeyStore } from './auth/api-keys.js';
import type { AppConfig } from './config/app-config.js';
import { HttpErrorFilter } from './http/http-error.filter.js';
import { installServerHooks } from './http/server-hooks.js';
import { LifecycleService } from './lifecycle/lifecycle.service.js';
import { NestPinoLogger } from './logging/logger.js';
import { MetricsService } from './metrics/metrics.service.js';

const REQUEST_ID = /^[\w.:@-]{1,128}$/;

/** The caller's X-Request-Id when it is a sane token (so ids follow a request across services), else a new one. */
function requestId(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export async function createApp(
  config: AppConfig,
  logger: Logger,
  apiKeys: ApiKeyStore,
): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    bodyLimit: config.bodyLimitBytes,
    genReqId: requestId,
    // The access log is written by the onResponse hook (one line per request, with the route and duration).
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    return503OnClosing: true,
    // The app has no Nest middleware, so @fastify/middie (an onRequest hook run on every request) is left
    // out. Adding middleware (a configure() in a module) means removing this line.
    skipMiddie: true,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.register(config, logger, apiKeys), adapter, {
    bodyParser: false,
    logger: new NestPinoLogger(logger.child({ component: 'nest' })),
    abortOnError: false,
  });
  const fastify = app.getHttpAdapter().getInstance();
  // JSON only: any other body type is a 415, not a string handed to the handlers.
  fastify.removeContentTypeParser('text/plain');
  installServerHooks(fastify, app.get(LifecycleService), app.get(MetricsService), config.accessLog);
  app.useGlobalFilters(new HttpErrorFilter(config.bodyLimitBytes));
  return app;
}
