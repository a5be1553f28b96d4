// One error shape for every failure. Client errors keep their 4xx status (never a 500), with a message
// saying what to fix; only real server faults are 500, logged with the request id.
// Open Inference Protocol routes answer {"error": "..."} as that protocol says.
import { STATUS_CODES } from 'node:http';

import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { InputError } from '../scoring/tensor-input.js';
import { endArrival } from './server-hooks.js';

interface Classified {
  status: number;
  message: string;
}

function messageOf(response: unknown, fallback: string): string {
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown } | undefined)?.message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : fallback;
}

export function classifyError(exception: unknown, bodyLimitBytes: number): Classified {
  if (exception instanceof InputError) return { status: 400, message: exception.message };
  if (exception instanceof HttpException) {
    // Nest wraps Fastify's own 4xx errors (body parsing, media type) with the original as the cause.
    const cause = exception.cause as { code?: unknown } | undefined;
    if (typeof cause?.code === 'string' && cause.code.startsWith('FST_')) return classifyError(cause, bodyLimitBytes);
    return { status: exception.getStatus(), message: messageOf(exception.getResponse(), exception.message) };
  }
  const { statusCode, code, message } = (exception ?? {}) as {
    statusCode?: unknown;
    code?: unknown;
    message?: unknown;
  };
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    switch (code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return {
          status: 413,
          message: `the request body is larger than the ${bodyLimitBytes}-byte limit (BODY_LIMIT); send fewer rows per request`,
        };
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return {
          status: 415,
          message: 'unsupported media type: send the body as JSON with "Content-Type: application/json"',
        };
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return { status: 400, message: 'the request body is empty; send a JSON object' };
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return { status: 400, message: 'malformed JSON in the request body: it does not parse as JSON' };
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return { status: 400, message: 'the Content-Length header does not match the body' };
      default:
        if (exception instanceof SyntaxError)
          return { status: 400, message: `malformed JSON in the request body: ${String(message)}` };
        return {
          status: statusCode,
          message: typeof message === 'string' ? message : (STATUS_CODES[statusCode] ?? 'bad request'),
        };
    }
  }
  return { status: 500, message: 'internal error; the request id in the logs tells what happened' };
}

@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  constructor(private readonly bodyLimitBytes: number) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    endArrival(request);
    const { status, message } = classifyError(exception, this.bodyLimitBytes);
    if (status >= 500) request.log.error({ err: exception }, 'request failed');
    const body = request.url.startsWith('/v2/')
      ? { error: message }
      : { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, requestId: request.id };
    void reply.status(status).send(body);
  }
}
