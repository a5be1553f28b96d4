import * as tl from 'azure-pipelines-task-lib/task';

import { azureConnection } from '../connections/azureResourceManager';
import { InputError } from '../errors';
import { booleanInput, connectionInput, enumInput, optionalString, requiredString, secretString } from '../inputs';
import { registerSecret } from '../secrets';
import type { AzureBlobAuth, AzureBlobLocation } from './azureBlob';
import type { S3Location } from './s3';

/**
 * The storage inputs FetchModel and PublishModel share (same names in both task.json files).
 * Called only from the tasks' parameters.ts.
 */

const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$/;

export function readAzureBlobLocation(): AzureBlobLocation {
  const kind = enumInput(
    'authenticationType',
    ['serviceConnection', 'connectionString', 'sas'] as const,
    'serviceConnection',
  );
  const container = requiredString('container');
  if (!CONTAINER_NAME.test(container) && container !== '$root') {
    throw new InputError(
      'container',
      `'${container}' is not a valid container name: 3-63 lower-case letters, digits and single hyphens.`,
    );
  }
  const blobEndpoint = optionalString('blobEndpoint');
  if (blobEndpoint && !/^https?:\/\/[^/?#]+(\/[^?#]*)?$/i.test(blobEndpoint)) {
    throw new InputError(
      'blobEndpoint',
      `'${blobEndpoint}' is not an endpoint URL. Write e.g. https://myaccount.blob.core.chinacloudapi.cn or http://127.0.0.1:10000/devstoreaccount1, with no query string.`,
    );
  }
  let auth: AzureBlobAuth;
  if (kind === 'serviceConnection') {
    const id = connectionInput('azureSubscription')!;
    const connection = azureConnection('azureSubscription', id);
    const storageAccount = requiredString('storageAccount');
    if (!/^[a-z0-9]{3,24}$/.test(storageAccount))
      throw new InputError(
        'storageAccount',
        `'${storageAccount}' is not a storage account name (3-24 lower-case letters and digits).`,
      );
    auth = { kind, credential: connection.credential, storageAccount, storageSuffix: connection.storageSuffix };
  } else if (kind === 'connectionString') {
    const connectionString = secretString('connectionString', true)!;
    if (!/AccountName=|BlobEndpoint=|UseDevelopmentStorage=/i.test(connectionString)) {
      throw new InputError(
        'connectionString',
        'this is not an Azure Storage connection string (it has no AccountName or BlobEndpoint). Put the whole string in a secret variable and pass $(ThatVariable).',
      );
    }
    auth = { kind, connectionString };
  } else {
    const sas = secretString('sasToken', true)!;
    if (!/(?:^|[?&])sig=/.test(sas))
      throw new InputError('sasToken', 'this is not a SAS token or SAS URL (it has no sig= parameter).');
    auth = { kind, sas, storageAccount: optionalString('storageAccount') };
  }
  return { auth, container, blobEndpoint };
}

export function readS3Location(): S3Location {
  const kind = enumInput('s3AuthenticationType', ['accessKey', 'serviceConnection'] as const, 'accessKey');
  const bucket = requiredString('bucket');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new InputError('bucket', `'${bucket}' is not a valid bucket name.`);
  const endpoint = optionalString('s3Endpoint');
  if (endpoint && !/^https?:\/\/[^/?#]+\/?$/i.test(endpoint))
    throw new InputError('s3Endpoint', `'${endpoint}' is not an endpoint URL such as https://minio.example.com:9000.`);
  let accessKeyId: string;
  let secretAccessKey: string;
  let sessionToken: string | undefined;
  if (kind === 'serviceConnection') {
    // The AWS Toolkit for Azure DevOps' "AWS" service connection: access key as username, secret key as password.
    const id = connectionInput('awsCredentials')!;
    const username = tl.getEndpointAuthorizationParameter(id, 'username', true);
    const password = tl.getEndpointAuthorizationParameter(id, 'password', true);
    if (!username || !password)
      throw new InputError(
        'awsCredentials',
        `service connection '${id}' has no access key and secret key. It must be an AWS service connection (from the AWS Toolkit) with keys.`,
      );
    if (tl.getEndpointDataParameter(id, 'assumeRoleArn', true)) {
      throw new InputError(
        'awsCredentials',
        `service connection '${id}' asks to assume a role, which this task does not do. Use a connection whose keys can read the bucket directly.`,
      );
    }
    accessKeyId = username;
    secretAccessKey = registerSecret(password);
    sessionToken = registerSecret(tl.getEndpointAuthorizationParameter(id, 'sessionToken', true) || undefined);
  } else {
    accessKeyId = requiredString('awsAccessKeyId');
    secretAccessKey = secretString('awsSecretAccessKey', true)!;
    sessionToken = secretString('awsSessionToken');
  }
  return {
    bucket,
    region: optionalString('awsRegion') ?? (endpoint ? 'us-east-1' : requiredString('awsRegion')),
    accessKeyId,
    secretAccessKey,
    sessionToken,
    endpoint: endpoint?.replace(/\/+$/, ''),
    forcePathStyle: booleanInput('s3ForcePathStyle', !!endpoint),
  };
}
