// Structured JSON logs (pino), shared by Fastify's request logs and Nest's own messages.
import type { LoggerService } from '@nestjs/common';
import { type Logger, pino } from 'pino';

export function createRootLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'onnx-scoring-service', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // Credentials never reach a log line, even if some code logs a whole request.
    redact: {
      paths: ['req.headers.authorization', 'req.headers["api-key"]', 'headers.authorization', 'headers["api-key"]'],
      censor: '[redacted]',
    },
  });
}

/** Routes Nest's framework messages into the same pino stream, with their context as a field. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.info({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace({ context }, String(message));
  }
}
