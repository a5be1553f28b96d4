import { CanActivate, ExecutionContext, Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { ApiKeyStore, presentedKey } from './api-keys.js';

@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(@Inject(ApiKeyStore) private readonly keys: ApiKeyStore) {}

  canActivate(context: ExecutionContext): boolean {
    if (!this.keys.enabled) return true;
    const http = context.switchToHttp();
    const key = presentedKey(http.getRequest<FastifyRequest>().headers);
    if (key !== undefined && this.keys.accepts(key)) return true;
    http.getResponse<FastifyReply>().header('WWW-Authenticate', 'Bearer realm="scoring"');
    throw new UnauthorizedException(
      key === undefined
        ? 'an API key is required: send "Authorization: Bearer <key>" or "api-key: <key>"'
        : 'the API key is not valid',
    );
  }
}
