import { InputError } from '../common/errors';
import {
  booleanInput,
  byteSizeInput,
  enumInput,
  existingPath,
  integerInput,
  mapInput,
  optionalString,
  requiredString,
} from '../common/inputs';
import type { AzureBlobLocation } from '../common/storage/azureBlob';
import type { S3Location } from '../common/storage/s3';
import { readAzureBlobLocation, readS3Location } from '../common/storage/storageInputs';

export type DestinationParameters =
  { type: 'azureBlob'; location: AzureBlobLocation } | { type: 's3'; location: S3Location };

export interface PublishModelParameters {
  destination: DestinationParameters;
  /** Absolute path of the model file or folder. */
  modelPath: string;
  modelName: string;
  modelVersion: string;
  /** Folder in the container the models live under, '' or ending in '/'. */
  pathPrefix: string;
  /** Blob index tags (Azure) / object tags (S3), e.g. stage=staging. */
  tags: Record<string, string>;
  /** Extra metadata on every file, beside sha256, modelName and modelVersion. */
  metadata: Record<string, string>;
  overwrite: boolean;
  blockSize: number;
  concurrency: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MiB = 1024 * 1024;
const RESERVED_METADATA = ['sha256', 'modelname', 'modelversion', 'modelsha256'];

export function readParameters(): PublishModelParameters {
  const type = enumInput('destination', ['azureBlob', 's3'] as const, 'azureBlob');
  const destination: DestinationParameters =
    type === 'azureBlob' ? { type, location: readAzureBlobLocation() } : { type, location: readS3Location() };
  const modelName = requiredString('modelName');
  if (!NAME.test(modelName))
    throw new InputError(
      'modelName',
      `'${modelName}' is not a model name: use letters, digits, '.', '_' and '-' (no '/'), up to 128 characters.`,
    );
  const modelVersion = requiredString('modelVersion');
  if (!NAME.test(modelVersion))
    throw new InputError(
      'modelVersion',
      `'${modelVersion}' is not a version: use letters, digits, '.', '_' and '-', e.g. 1.4.2.`,
    );
  let pathPrefix = (optionalString('pathPrefix') ?? '').replace(/^\/+/, '');
  if (pathPrefix && !pathPrefix.endsWith('/')) pathPrefix += '/';
  if (pathPrefix.split('/').some((s) => s === '..' || s === '.'))
    throw new InputError('pathPrefix', `'${pathPrefix}' may not contain '.' or '..' segments.`);
  const metadata = mapInput('metadata', {
    keyPattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
    keyHint: 'metadata names are C# identifiers: letters, digits and _',
  });
  for (const key of Object.keys(metadata)) {
    if (RESERVED_METADATA.includes(key.toLowerCase()))
      throw new InputError('metadata', `'${key}' is set by the task itself; remove it.`);
  }
  const tags = mapInput('tags', {
    keyPattern: /^[A-Za-z0-9 +\-./:=_]{1,128}$/,
    keyHint: 'tag names are 1-128 letters, digits, spaces and + - . / : = _',
  });
  if (Object.keys(tags).length > 10) throw new InputError('tags', 'a blob can carry at most 10 index tags.');
  return {
    destination,
    modelPath: existingPath('modelPath')!,
    modelName,
    modelVersion,
    pathPrefix,
    tags,
    metadata,
    overwrite: booleanInput('overwrite', false),
    blockSize: byteSizeInput('blockSize', { min: 1 * MiB, max: 4000 * MiB, fallback: 8 * MiB }),
    concurrency: integerInput('concurrency', { min: 1, max: 64, fallback: 8 }),
  };
}
