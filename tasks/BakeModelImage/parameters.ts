import * as os from 'node:os';
import * as path from 'node:path';

import * as tl from 'azure-pipelines-task-lib/task';

import { InputError } from '../common/errors';
import {
  booleanInput,
  byteSizeInput,
  connectionInput,
  enumInput,
  existingPath,
  integerInput,
  listInput,
  mapInput,
  optionalString,
  requiredString,
} from '../common/inputs';
import { parsePlatform, type Platform } from '../common/oci/image';
import type { LayerCompression } from '../common/oci/mediaTypes';
import {
  type ImageReference,
  InvalidReferenceError,
  isLayoutReference,
  isValidTag,
  type LayoutReference,
  parseLayoutReference,
  parseReference,
  parseRepository,
} from '../common/oci/reference';

export type RegistryConnectionChoice =
  | { type: 'azureResourceManager'; input: string; connectionId: string }
  | { type: 'dockerRegistry'; input: string; connectionId: string }
  | { type: 'none' };

/** The base: an image on a registry, or an OCI image layout folder on the agent (`oci:<folder>[:<ref-name>|@<digest>]`). */
export type BaseImage = { kind: 'registry'; ref: ImageReference } | { kind: 'layout'; ref: LayoutReference };

export interface BakeModelImageParameters {
  baseImage: BaseImage;
  /** As the user wrote it, for messages and the summary. */
  baseImageText: string;
  platform: Platform;
  connection: RegistryConnectionChoice;
  /** For a private base image on a registry other than the target. */
  baseRegistryConnectionId?: string;
  /** Absent when nothing is pushed (OCI layout only). */
  target?: { registry: string; repository: string };
  /** As given; empty means the build id and the model version. */
  tags: string[];
  outputLayout?: string;
  model: { path: string; name?: string; version?: string; targetPath?: string };
  app?: { directory: string; targetPath: string; exclude: string[] };
  env: Array<[string, string]>;
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  exposedPorts: string[];
  labels: Record<string, string>;
  includeRunLabels: boolean;
  compression: LayerCompression;
  compressionLevel: number;
  uploadChunkSize: number;
  /** Seconds since the epoch for every timestamp in the image. */
  epoch: number;
  pipeline: {
    buildId?: string;
    sourceVersion?: string;
    repositoryUri?: string;
    collectionUri?: string;
    project?: string;
    definitionName?: string;
  };
  workDir: string;
}

function baseImage(input: string): { text: string; base: BaseImage } {
  const text = requiredString(input);
  try {
    if (isLayoutReference(text)) {
      const ref = parseLayoutReference(text);
      return { text, base: { kind: 'layout', ref: { ...ref, path: absolutePath(ref.path) } } };
    }
    return { text, base: { kind: 'registry', ref: parseReference(text) } };
  } catch (err) {
    if (err instanceof InvalidReferenceError) {
      const hint = isLayoutReference(text)
        ? 'Write oci:<folder>, oci:<folder>:<ref-name> or oci:<folder>@sha256:<digest>, e.g. oci:$(Pipeline.Workspace)/base:1.2.'
        : 'Write it as registry/repository:tag or registry/repository@sha256:<digest>, e.g. myacr.azurecr.io/scoring-app:1.2, or oci:<folder>[:<ref-name>] for an OCI image layout on the agent.';
      throw new InputError(input, `${err.problem} ${hint}`);
    }
    throw err;
  }
}

/** `["node","main.js"]` as JSON, or words separated by spaces with "quoted" parts kept together. */
export function parseCommand(input: string): string[] | undefined {
  const text = optionalString(input);
  if (text === undefined) return undefined;
  if (text.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new InputError(
        input,
        `'${text}' is not a valid JSON array. Write ["executable", "arg", ...] or plain words.`,
      );
    }
    if (!Array.isArray(parsed) || parsed.some((p) => typeof p !== 'string'))
      throw new InputError(input, 'the JSON form must be an array of strings.');
    return parsed as string[];
  }
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]));
  return words;
}

function sourceDateEpoch(): number {
  const raw = tl.getVariable('SOURCE_DATE_EPOCH') ?? process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw.trim() === '') return 0;
  if (!/^\d+$/.test(raw.trim()))
    throw new InputError(
      'SOURCE_DATE_EPOCH',
      `'${raw}' is not a whole number of seconds since 1970.`,
      `The SOURCE_DATE_EPOCH variable '${raw}' is not a whole number of seconds since 1970. Fix or remove the variable.`,
    );
  return Number(raw.trim());
}

function absolutePath(p: string): string {
  return path.resolve(tl.getVariable('System.DefaultWorkingDirectory') ?? process.cwd(), p);
}

export function readParameters(): BakeModelImageParameters {
  const base = baseImage('baseImage');
  const platformText = optionalString('platform') ?? 'linux/amd64';
  const platform = parsePlatform(platformText);
  if (!platform)
    throw new InputError(
      'platform',
      `'${platformText}' is not a platform. Write os/architecture[/variant], e.g. linux/amd64 or linux/arm64.`,
    );

  const type = enumInput(
    'connectionType',
    ['dockerRegistry', 'azureResourceManager', 'none'] as const,
    'dockerRegistry',
  );
  let connection: RegistryConnectionChoice;
  if (type === 'azureResourceManager')
    connection = { type, input: 'azureSubscription', connectionId: connectionInput('azureSubscription')! };
  else if (type === 'dockerRegistry')
    connection = {
      type,
      input: 'dockerRegistryServiceConnection',
      connectionId: connectionInput('dockerRegistryServiceConnection')!,
    };
  else connection = { type: 'none' };

  const outputLayoutText = optionalString('outputLayout');
  const outputLayout = outputLayoutText ? absolutePath(outputLayoutText) : undefined;
  let target: BakeModelImageParameters['target'];
  const repositoryText = type === 'none' ? optionalString('repository') : requiredString('repository');
  if (repositoryText) {
    try {
      target = parseRepository(repositoryText);
    } catch (err) {
      if (err instanceof InvalidReferenceError)
        throw new InputError(
          'repository',
          `${err.problem} Write registry/repository, e.g. myacr.azurecr.io/scoring; put tags in the tags input.`,
        );
      throw err;
    }
  }
  if (type === 'none' && !outputLayout)
    throw new InputError(
      'outputLayout',
      'with connection type none nothing is pushed, so give a folder to write the OCI image layout to.',
    );

  const tags = listInput('tags');
  for (const tag of tags)
    if (!isValidTag(tag))
      throw new InputError(
        'tags',
        `'${tag}' is not a valid tag: use letters, digits, _ . and -, at most 128, not starting with . or -.`,
      );

  const appDirectory = existingPath('appDirectory', 'directory', false);
  const appTarget = optionalString('appTargetPath') ?? '/app';
  if (!appTarget.startsWith('/'))
    throw new InputError('appTargetPath', `'${appTarget}' must be an absolute path in the image, e.g. /app.`);
  const modelTarget = optionalString('modelTargetPath');
  if (modelTarget !== undefined && !modelTarget.startsWith('/'))
    throw new InputError(
      'modelTargetPath',
      `'${modelTarget}' must be an absolute path in the image, e.g. /models/churn.`,
    );

  const env = Object.entries(
    mapInput('env', {
      keyPattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
      keyHint: 'letters, digits and _, not starting with a digit',
    }),
  );
  const exposedPorts = listInput('exposedPorts', { separators: /[\s,]+/ });
  for (const port of exposedPorts)
    if (!/^\d{1,5}(\/(tcp|udp|sctp))?$/i.test(port))
      throw new InputError('exposedPorts', `'${port}' is not a port. Write e.g. 3000 or 3000/tcp.`);

  return {
    baseImage: base.base,
    baseImageText: base.text,
    platform,
    connection,
    baseRegistryConnectionId: connectionInput('baseRegistryConnection', false),
    target,
    tags,
    outputLayout,
    model: {
      path: existingPath('modelPath')!,
      name: optionalString('modelName'),
      version: optionalString('modelVersion'),
      targetPath: modelTarget,
    },
    app: appDirectory
      ? { directory: appDirectory, targetPath: appTarget, exclude: listInput('appExclude', { separators: /[\r\n]+/ }) }
      : undefined,
    env,
    entrypoint: parseCommand('entrypoint'),
    cmd: parseCommand('cmd'),
    workingDir: optionalString('workingDir'),
    user: optionalString('user'),
    exposedPorts,
    labels: mapInput('labels'),
    includeRunLabels: booleanInput('includeRunLabels', false),
    compression: enumInput('compression', ['gzip', 'none'] as const, 'gzip'),
    compressionLevel: integerInput('compressionLevel', { min: 1, max: 9, fallback: 6 }),
    uploadChunkSize: byteSizeInput('uploadChunkSize', { min: 0, max: 4 * 1024 ** 3, fallback: 64 * 1024 * 1024 }),
    epoch: sourceDateEpoch(),
    pipeline: {
      buildId: tl.getVariable('Build.BuildId'),
      sourceVersion: tl.getVariable('Build.SourceVersion'),
      repositoryUri: tl.getVariable('Build.Repository.Uri'),
      collectionUri: tl.getVariable('System.TeamFoundationCollectionUri'),
      project: tl.getVariable('System.TeamProject'),
      definitionName: tl.getVariable('Build.DefinitionName'),
    },
    workDir: tl.getVariable('Agent.TempDirectory') ?? process.env.AGENT_TEMPDIRECTORY ?? os.tmpdir(),
  };
}
