// The Open Inference Protocol (KServe v2) REST endpoints, for clients and gateways that speak it.
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { ApiKeyGuard } from '../auth/api-key.guard.js';
import type { AppConfig } from '../config/app-config.js';
import { endArrival, SCORING_ROUTE } from '../http/server-hooks.js';
import { LifecycleService } from '../lifecycle/lifecycle.service.js';
import { ModelService } from '../model/model.service.js';
import type { LoadedModel } from '../model/model-loader.js';
import { type TensorSpec, toV2Datatype } from '../model/tensor-types.js';
import { APP_CONFIG } from '../tokens.js';
import { type InferOutputTensor, parseInferRequest, toInferOutput } from './v2-request.js';

const SERVER_NAME = 'onnx-scoring-service';
const SERVER_VERSION = '1.0.0';

function tensorMetadata(spec: TensorSpec) {
  return { name: spec.name, datatype: toV2Datatype(spec.type), shape: spec.dims.map((dim) => dim ?? -1) };
}

@Controller('v2')
export class InferenceProtocolController {
  constructor(
    @Inject(ModelService) private readonly models: ModelService,
    @Inject(LifecycleService) private readonly lifecycle: LifecycleService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get()
  serverMetadata() {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: [] };
  }

  @Get('health/live')
  live() {
    return { live: true };
  }

  @Get('health/ready')
  ready(@Res({ passthrough: true }) reply: FastifyReply) {
    if (!this.lifecycle.ready) reply.status(503);
    return { ready: this.lifecycle.ready };
  }

  @Get('models/:name')
  @UseGuards(ApiKeyGuard)
  metadata(@Param('name') name: string) {
    return this.describe(this.served(name));
  }

  @Get('models/:name/versions/:version')
  @UseGuards(ApiKeyGuard)
  versionMetadata(@Param('name') name: string, @Param('version') version: string) {
    return this.describe(this.served(name, version));
  }

  @Get('models/:name/ready')
  modelReady(@Param('name') name: string, @Res({ passthrough: true }) reply: FastifyReply) {
    return this.readiness(name, undefined, reply);
  }

  @Get('models/:name/versions/:version/ready')
  modelVersionReady(
    @Param('name') name: string,
    @Param('version') version: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    return this.readiness(name, version, reply);
  }

  @Post('models/:name/infer')
  @HttpCode(200)
  @UseGuards(ApiKeyGuard)
  @RouteConfig(SCORING_ROUTE)
  infer(@Param('name') name: string, @Body() body: unknown, @Req() request: FastifyRequest) {
    return this.runInference(name, undefined, body, request);
  }

  @Post('models/:name/versions/:version/infer')
  @HttpCode(200)
  @UseGuards(ApiKeyGuard)
  @RouteConfig(SCORING_ROUTE)
  inferVersion(
    @Param('name') name: string,
    @Param('version') version: string,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
  ) {
    return this.runInference(name, version, body, request);
  }

  private async runInference(name: string, version: string | undefined, body: unknown, request: FastifyRequest) {
    let parsed;
    let model: LoadedModel;
    try {
      model = this.served(name, version);
      parsed = parseInferRequest(body, model.signature, { maxRows: this.config.maxRowsPerRequest });
    } finally {
      endArrival(request);
    }
    const results = await this.models.infer(parsed.feeds);
    const outputs: InferOutputTensor[] = parsed.outputNames.map((outputName) =>
      toInferOutput(outputName, results[outputName]),
    );
    return {
      model_name: model.name,
      model_version: model.version,
      ...(parsed.id !== undefined ? { id: parsed.id } : {}),
      outputs,
    };
  }

  private readiness(name: string, version: string | undefined, reply: FastifyReply) {
    const model = this.served(name, version);
    if (!this.lifecycle.ready) reply.status(503);
    return { name: model.name, version: model.version, ready: this.lifecycle.ready };
  }

  private served(name: string, version?: string): LoadedModel {
    const model = this.models.model;
    if (name !== model.name || (version !== undefined && version !== model.version)) {
      throw new NotFoundException(
        `model "${name}"${version !== undefined ? ` version "${version}"` : ''} is not served here; this server serves "${model.name}" version "${model.version}"`,
      );
    }
    return model;
  }

  private describe(model: LoadedModel) {
    return {
      name: model.name,
      versions: [model.version],
      platform: 'onnxruntime_onnx',
      inputs: model.signature.inputs.map(tensorMetadata),
      outputs: model.signature.outputs.map(tensorMetadata),
    };
  }
}
