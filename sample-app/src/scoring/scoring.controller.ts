import { Body, Controller, HttpCode, Inject, Post, Req, UseGuards } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';

import { ApiKeyGuard } from '../auth/api-key.guard.js';
import type { AppConfig } from '../config/app-config.js';
import { endArrival, SCORING_ROUTE } from '../http/server-hooks.js';
import { ModelService } from '../model/model.service.js';
import { APP_CONFIG } from '../tokens.js';
import { parseScoreBody, toNested } from './score-request.js';

export interface ScoreResponse {
  outputs: Record<string, unknown>;
  model: { name: string; version: string };
}

@Controller()
@UseGuards(ApiKeyGuard)
export class ScoringController {
  constructor(
    @Inject(ModelService) private readonly models: ModelService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Post('score')
  @HttpCode(200)
  @RouteConfig(SCORING_ROUTE)
  async score(@Body() body: unknown, @Req() request: FastifyRequest): Promise<ScoreResponse> {
    const model = this.models.model;
    let feeds;
    try {
      feeds = parseScoreBody(body, model.signature, { maxRows: this.config.maxRowsPerRequest });
    } finally {
      endArrival(request);
    }
    const results = await this.models.infer(feeds);
    const outputs: Record<string, unknown> = {};
    for (const spec of model.signature.outputs) outputs[spec.name] = toNested(results[spec.name]);
    return { outputs, model: { name: model.name, version: model.version } };
  }
}
