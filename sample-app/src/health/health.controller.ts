// Probes for Kubernetes and the model description. /healthz answers while the process serves at all;
// /readyz only once the model is loaded and warmed up, and no longer while draining.
import { Controller, Get, Header, Inject, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

import { ApiKeyGuard } from '../auth/api-key.guard.js';
import { LifecycleService } from '../lifecycle/lifecycle.service.js';
import { type ModelDescription, ModelService } from '../model/model.service.js';

@Controller()
export class HealthController {
  constructor(
    @Inject(LifecycleService) private readonly lifecycle: LifecycleService,
    @Inject(ModelService) private readonly models: ModelService,
  ) {}

  @Get('healthz')
  @Header('Cache-Control', 'no-store')
  live() {
    return { status: 'ok' };
  }

  @Get('readyz')
  @Header('Cache-Control', 'no-store')
  ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const state = this.lifecycle.state;
    if (state !== 'ready') reply.status(503);
    return { status: state };
  }

  @Get('model')
  @UseGuards(ApiKeyGuard)
  model(): ModelDescription {
    return this.models.info;
  }
}
