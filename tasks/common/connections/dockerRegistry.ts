import * as tl from 'azure-pipelines-task-lib/task';

import { InputError } from '../errors';
import { readSecretQuietly } from '../secrets';

/** A Docker registry service connection: where, and the basic credentials to log in with. */
export interface RegistryConnection {
  id: string;
  /** Host (and port) only, e.g. myacr.azurecr.io or 127.0.0.1:5000. */
  registry: string;
  username?: string;
  password?: string;
  /** Plain http only for loopback registries and when the connection URL says http. */
  insecure: boolean;
}

/** "https://index.docker.io/v1/" → "registry-1.docker.io"; "myacr.azurecr.io/" → host only. */
export function registryHostOf(url: string): { host: string; insecure: boolean } {
  const trimmed = url.trim();
  const withScheme = /^[a-z]+:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`;
  const parsed = new URL(withScheme);
  let host = parsed.host;
  if (host === 'index.docker.io' || host === 'docker.io') host = 'registry-1.docker.io';
  return { host, insecure: parsed.protocol === 'http:' };
}

export function registryConnection(inputName: string, connectionId: string): RegistryConnection {
  const scheme = tl.getEndpointAuthorizationScheme(connectionId, true);
  if (!scheme) {
    throw new InputError(
      inputName,
      `service connection '${connectionId}' was not found or is not shared with this pipeline. Pick a Docker Registry service connection.`,
    );
  }
  const auth = (key: string) => tl.getEndpointAuthorizationParameter(connectionId, key, true) || undefined;
  // "Others" registry connections keep the URL in auth params; ACR-type ones keep a login server.
  const url = auth('registry') ?? auth('loginServer') ?? tl.getEndpointUrl(connectionId, true);
  if (!url)
    throw new InputError(
      inputName,
      `service connection '${connectionId}' has no registry URL. Edit it and set the Docker Registry URL.`,
    );
  const { host, insecure } = registryHostOf(url);
  const username = auth('username') ?? auth('serviceprincipalid');
  const password = readSecretQuietly(() => auth('password') ?? auth('serviceprincipalkey'));
  return { id: connectionId, registry: host, username, password, insecure };
}
