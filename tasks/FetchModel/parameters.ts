import * as tl from 'azure-pipelines-task-lib/task';

import { systemAccessToken } from '../common/connections/azureResourceManager';
import { InputError } from '../common/errors';
import {
  booleanInput,
  byteSizeInput,
  enumInput,
  integerInput,
  mapInput,
  optionalString,
  requiredString,
  secretString,
} from '../common/inputs';
import type { AzureBlobLocation } from '../common/storage/azureBlob';
import type { S3Location } from '../common/storage/s3';
import { readAzureBlobLocation, readS3Location } from '../common/storage/storageInputs';
import type { Selection, VersionSelector } from './selectModel';

export type SourceParameters =
  | { type: 'azureBlob'; location: AzureBlobLocation }
  | { type: 's3'; location: S3Location }
  | { type: 'url'; url: string }
  | { type: 'pipelineArtifact'; artifact: PipelineArtifactParameters };

export interface PipelineArtifactParameters {
  collectionUri: string;
  project: string;
  /** Pipeline (definition) name or numeric id. */
  pipeline: string;
  /** A run id; without it, the latest successful run (on `branch` when given). */
  runId?: number;
  branch?: string;
  artifactName: string;
  accessToken: string;
}

export interface FetchModelParameters {
  source: SourceParameters;
  selection: Selection;
  targetPath: string;
  expectedSha256?: string;
  blockSize: number;
  concurrency: number;
  /** Re-hash files already in the target before trusting them as a cache hit. */
  verifyCache: boolean;
}

const MiB = 1024 * 1024;

export function readParameters(): FetchModelParameters {
  const type = enumInput('source', ['azureBlob', 's3', 'pipelineArtifact', 'url'] as const, 'azureBlob');
  let source: SourceParameters;
  let selection: Selection;
  if (type === 'url') {
    const url = secretString('url', true)!;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InputError(
        'url',
        'this is not a URL. Give the full https:// address (a SAS URL is fine: keep it in a secret variable).',
      );
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
      throw new InputError(
        'url',
        `use https:// (got ${parsed.protocol}//${parsed.host}); a model fetched over plain HTTP could be tampered with on the way.`,
      );
    }
    source = { type, url };
    selection = { selector: 'exact', modelPath: '' };
  } else {
    if (type === 'azureBlob') source = { type, location: readAzureBlobLocation() };
    else if (type === 's3') source = { type, location: readS3Location() };
    else source = { type, artifact: readArtifactParameters() };
    selection = readSelection(type);
  }
  const expectedSha256 = optionalString('expectedSha256')
    ?.toLowerCase()
    .replace(/^sha256:/, '');
  if (expectedSha256 !== undefined && !/^[0-9a-f]{64}$/.test(expectedSha256)) {
    throw new InputError(
      'expectedSha256',
      `'${expectedSha256}' is not a SHA-256: give 64 hex digits (for a folder model, the folder digest printed as ModelSha256 by an earlier run).`,
    );
  }
  return {
    source,
    selection,
    targetPath: requiredString('targetPath'),
    expectedSha256,
    blockSize: byteSizeInput('blockSize', { min: 256 * 1024, max: 4000 * MiB, fallback: 8 * MiB }),
    concurrency: integerInput('concurrency', { min: 1, max: 64, fallback: 8 }),
    verifyCache: booleanInput('verifyCache', true),
  };
}

function readSelection(type: 'azureBlob' | 's3' | 'pipelineArtifact'): Selection {
  const allowed: readonly VersionSelector[] =
    type === 'azureBlob'
      ? ['exact', 'latest', 'semver', 'metadata', 'tags', 'versionId', 'snapshot']
      : type === 's3'
        ? ['exact', 'latest', 'semver', 'metadata', 'versionId']
        : ['exact'];
  const selector = enumInput('versionSelector', allowed, 'exact');
  const modelPath = type === 'pipelineArtifact' ? (optionalString('modelPath') ?? '') : requiredString('modelPath');
  const selection: Selection = { selector, modelPath, includePrerelease: booleanInput('includePrerelease', false) };
  if (selector === 'metadata') {
    selection.metadataFilter = mapInput('metadataFilter', {
      keyPattern: /^[A-Za-z_][A-Za-z0-9_-]*$/,
      keyHint: 'metadata names are letters, digits, _ and -',
    });
    if (Object.keys(selection.metadataFilter).length === 0)
      throw InputError.required('metadataFilter', 'Give key=value lines, e.g. stage=production.');
  }
  if (selector === 'tags') {
    selection.tagFilter = requiredString('tagFilter');
    if (!/['"]/.test(selection.tagFilter))
      throw new InputError(
        'tagFilter',
        `'${selection.tagFilter}' is not a blob index tag expression. Write e.g. "stage" = 'production' (tag names in double quotes, values in single quotes).`,
      );
  }
  if (selector === 'versionId') selection.versionId = requiredString('versionId');
  if (selector === 'snapshot') {
    selection.snapshot = requiredString('snapshot');
    if (Number.isNaN(Date.parse(selection.snapshot)))
      throw new InputError(
        'snapshot',
        `'${selection.snapshot}' is not a snapshot time such as 2026-11-25T10:15:30.1234567Z.`,
      );
  }
  return selection;
}

function readArtifactParameters(): PipelineArtifactParameters {
  const collectionUri = tl.getVariable('System.CollectionUri') ?? tl.getVariable('System.TeamFoundationCollectionUri');
  if (!collectionUri)
    throw new InputError(
      'source',
      'pipelineArtifact needs System.CollectionUri, which the agent always sets; run the task in a pipeline.',
    );
  const accessToken = systemAccessToken();
  if (!accessToken) {
    throw new InputError(
      'source',
      'pipelineArtifact reads the other pipeline with System.AccessToken, which this job does not have. Map it: env or "Allow scripts to access the OAuth token".',
    );
  }
  const runIdText = optionalString('runId');
  let runId: number | undefined;
  if (runIdText !== undefined) {
    runId = integerInput('runId', { min: 1 });
  }
  return {
    collectionUri: collectionUri.replace(/\/*$/, '/'),
    project: optionalString('project') ?? tl.getVariable('System.TeamProject') ?? requiredString('project'),
    pipeline: requiredString('pipeline'),
    runId,
    branch: optionalString('branch'),
    artifactName: requiredString('artifactName'),
    accessToken,
  };
}
