import type { ConfigChanges } from '../common/oci/image';
import { sanitizeTag } from '../common/oci/reference';
import type { HashedModel, ModelInfo } from './modelInfo';
import type { BakeModelImageParameters } from './parameters';

/**
 * Everything the bake changes in the base's config, worked out from the inputs with no I/O:
 * MODEL_* env, labels (OCI annotations keys), user config; all timestamps at the fixed epoch.
 */

export const LABEL_PREFIX = 'org.modeldelivery';

export function isoTime(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Where the model lands and what MODEL_PATH says. */
export function modelPaths(
  params: BakeModelImageParameters,
  model: ModelInfo,
): { layerTarget: string; modelPath: string } {
  const folder = (params.model.targetPath ?? `/models/${model.name.replace(/[^A-Za-z0-9._-]+/g, '-')}`).replace(
    /\/+$/,
    '',
  );
  if (!model.isFolder) {
    const fileName = model.sourcePath.split(/[\\/]/).pop()!;
    return { layerTarget: `${folder}/${fileName}`, modelPath: `${folder}/${fileName}` };
  }
  return { layerTarget: folder, modelPath: model.servedFile ? `${folder}/${model.servedFile}` : folder };
}

/** The base as labels name it: `name` is a registry reference, or `oci:<ref-name>` for a layout (never the agent's folder path, which would change the digest). */
export interface BaseForLabels {
  digest: string;
  name?: string;
}

export function imageLabels(
  params: BakeModelImageParameters,
  model: HashedModel,
  base: BaseForLabels,
): Record<string, string> {
  const labels: Record<string, string> = {};
  const set = (key: string, value: string | undefined) => {
    if (value) labels[key] = value;
  };
  set('org.opencontainers.image.created', isoTime(params.epoch));
  set('org.opencontainers.image.source', params.pipeline.repositoryUri);
  set('org.opencontainers.image.revision', params.pipeline.sourceVersion);
  set('org.opencontainers.image.version', model.version);
  set('org.opencontainers.image.title', params.target?.repository.split('/').pop() ?? model.name);
  set('org.opencontainers.image.base.name', base.name);
  set('org.opencontainers.image.base.digest', base.digest);
  set(`${LABEL_PREFIX}.model.name`, model.name);
  set(`${LABEL_PREFIX}.model.version`, model.version);
  set(`${LABEL_PREFIX}.model.sha256`, model.sha256);
  set(`${LABEL_PREFIX}.model.source`, model.sourceUri);
  if (params.includeRunLabels) {
    // Only on request: a run id differs on every run, so the digest does too.
    set(`${LABEL_PREFIX}.pipeline.collection`, params.pipeline.collectionUri);
    set(`${LABEL_PREFIX}.pipeline.project`, params.pipeline.project);
    set(`${LABEL_PREFIX}.pipeline.name`, params.pipeline.definitionName);
    set(`${LABEL_PREFIX}.pipeline.runId`, params.pipeline.buildId);
  }
  return { ...labels, ...params.labels };
}

export function configChanges(
  params: BakeModelImageParameters,
  model: HashedModel,
  base: BaseForLabels,
): ConfigChanges {
  const { modelPath } = modelPaths(params, model);
  const env: Array<[string, string]> = [
    ['MODEL_PATH', modelPath],
    ['MODEL_NAME', model.name],
    ...(model.version ? ([['MODEL_VERSION', model.version]] as Array<[string, string]>) : []),
    ['MODEL_SHA256', model.sha256],
    ...params.env,
  ];
  return {
    env,
    entrypoint: params.entrypoint,
    cmd: params.cmd,
    workingDir: params.workingDir,
    user: params.user,
    exposedPorts: params.exposedPorts,
    labels: imageLabels(params, model, base),
    created: isoTime(params.epoch),
    history: {
      created: isoTime(params.epoch),
      created_by: `BakeModelImage: ENV ${env.map(([k]) => k).join(' ')}; LABEL; config`,
      comment: 'BakeModelImage',
    },
  };
}

/** The tags to put: as given, else the build id and the model version (made tag-safe). */
export function tagsToPut(params: BakeModelImageParameters, model: ModelInfo): string[] {
  const tags = params.tags.length
    ? params.tags
    : [params.pipeline.buildId, model.version]
        .map((t) => (t ? sanitizeTag(t) : undefined))
        .filter((t): t is string => !!t);
  return [...new Set(tags.length ? tags : ['latest'])];
}
