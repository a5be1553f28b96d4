// Fastify hooks around every request: request id header, in-flight count, HTTP metrics, the access log,
// the arrival count the micro-batcher waits on, and "Connection: close" while draining.
import type { FastifyInstance, FastifyRequest } from 'fastify';

import type { LifecycleService } from '../lifecycle/lifecycle.service.js';
import type { MetricsService } from '../metrics/metrics.service.js';

/** Route config that marks the routes whose requests go to the model (see RouteConfig in the controllers). */
export const SCORING_ROUTE = { scoring: true };

const arriving = new WeakSet<FastifyRequest>();
/** Requests counted in flight and not yet finished, with their route template (read once: Fastify builds routeOptions on every access). */
const counted = new WeakMap<FastifyRequest, string>();

let lifecycleRef: LifecycleService | undefined;

/** Called once a scoring request is parsed and checked (or failed): the batcher stops waiting for it. */
export function endArrival(request: FastifyRequest): void {
  if (arriving.delete(request)) lifecycleRef?.arrivalEnded();
}

export function installServerHooks(
  fastify: FastifyInstance,
  lifecycle: LifecycleService,
  metrics: MetricsService,
  accessLog: boolean,
): void {
  lifecycleRef = lifecycle;
  /** The request's route template the first time it finishes (answered or aborted), else undefined. */
  const finish = (request: FastifyRequest): string | undefined => {
    endArrival(request);
    const route = counted.get(request);
    if (route === undefined) return undefined;
    counted.delete(request);
    metrics.requestsInFlight--;
    return route;
  };

  fastify.addHook('onRequest', (request, _reply, done) => {
    const { url, config } = request.routeOptions;
    counted.set(request, url ?? 'unmatched');
    metrics.requestsInFlight++;
    if ((config as { scoring?: boolean } | undefined)?.scoring) {
      arriving.add(request);
      lifecycle.arrivalStarted();
    }
    done();
  });

  fastify.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (lifecycle.draining) reply.header('connection', 'close');
    done(null, payload);
  });

  // The labelled series of each route, method and status, looked up once rather than hashed per request.
  const series = new Map<string, { count: { inc(): void }; duration: { observe(seconds: number): void } }>();
  const seriesOf = (route: string, method: string, status: number) => {
    const key = `${route} ${method} ${status}`;
    let found = series.get(key);
    if (found === undefined) {
      const labels = { route, method, status: String(status) };
      found = { count: metrics.httpRequests.labels(labels), duration: metrics.httpDuration.labels(labels) };
      series.set(key, found);
    }
    return found;
  };

  fastify.addHook('onResponse', (request, reply, done) => {
    const route = finish(request);
    if (route !== undefined) {
      const { count, duration } = seriesOf(route, request.method, reply.statusCode);
      count.inc();
      duration.observe(reply.elapsedTime / 1000);
      if (accessLog) {
        request.log.info(
          {
            method: request.method,
            url: request.url,
            route,
            status: reply.statusCode,
            durationMs: Math.round(reply.elapsedTime * 1000) / 1000,
          },
          'request',
        );
      }
    }
    done();
  });

  fastify.addHook('onRequestAbort', (request, done) => {
    if (finish(request) !== undefined)
      request.log.info(
        { method: request.method, url: request.url },
        'client closed the connection before the response',
      );
    done();
  });
}
