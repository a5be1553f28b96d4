import * as tl from 'azure-pipelines-task-lib/task';

import { azureConnection } from '../common/connections/azureResourceManager';
import { registryConnection } from '../common/connections/dockerRegistry';
import { errorMessage, InputError, TaskError } from '../common/errors';
import type { RegistryCredential } from '../common/oci/auth';
import { type ImageSource, RegistryImageSource } from '../common/oci/imageSource';
import { LayoutImageSource } from '../common/oci/layoutSource';
import { apiHostOf } from '../common/oci/reference';
import { RegistryClient } from '../common/oci/registry';
import type { BakeModelImageParameters } from './parameters';

/**
 * The clients one bake needs: the push target's, and where the base image is read from (the
 * target's own client when they share a registry, another registry's, or an OCI layout folder).
 */
export interface Registries {
  target?: RegistryClient;
  base: ImageSource;
}

/** The repository on the target's registry that holds the base, when its layers can be mounted from it. */
export function mountableBaseRepository(registries: Registries): string | undefined {
  return registries.base instanceof RegistryImageSource && registries.base.client === registries.target
    ? registries.base.repository
    : undefined;
}

function sameHost(a: string, b: string): boolean {
  return apiHostOf(a).toLowerCase() === apiHostOf(b).toLowerCase();
}

export function connectRegistries(params: BakeModelImageParameters): Registries {
  let target: RegistryClient | undefined;
  const conn = params.connection;
  if (conn.type !== 'none' && params.target) {
    let credential: RegistryCredential;
    let insecure = false;
    if (conn.type === 'dockerRegistry') {
      const rc = registryConnection(conn.input, conn.connectionId);
      if (!sameHost(rc.registry, params.target.registry)) {
        throw new InputError(
          'repository',
          `'${params.target.registry}' is not the registry of service connection '${conn.connectionId}' (${rc.registry}). Push to ${rc.registry}/<repository>, or pick the connection for ${params.target.registry}.`,
        );
      }
      insecure = rc.insecure;
      credential =
        rc.username && rc.password
          ? {
              kind: 'basic',
              username: rc.username,
              password: rc.password,
              source: `service connection '${conn.connectionId}' (${conn.input})`,
            }
          : { kind: 'anonymous' };
    } else {
      const az = azureConnection(conn.input, conn.connectionId);
      const scope = `${az.resourceManagerUrl.replace(/\/+$/, '')}/.default`;
      credential = {
        kind: 'entra',
        source: `Azure service connection '${conn.connectionId}' (${conn.input})`,
        tenantId: az.tenantId || undefined,
        getEntraToken: async () => {
          let token: Awaited<ReturnType<typeof az.credential.getToken>>;
          try {
            token = await az.credential.getToken(scope);
          } catch (err) {
            throw new TaskError(
              `Azure service connection '${conn.connectionId}' (${conn.input}) could not sign in to push to ${params.target!.registry}: ${errorMessage(err)}`,
              { cause: err },
            );
          }
          if (!token)
            throw new TaskError(
              `Azure service connection '${conn.connectionId}' (${conn.input}) returned no Entra ID token for ${scope}.`,
            );
          return token.token;
        },
      };
    }
    target = new RegistryClient(params.target.registry, { credential, insecure });
  }

  if (params.baseImage.kind === 'layout') {
    if (params.baseRegistryConnectionId)
      tl.warning(
        `baseRegistryConnection '${params.baseRegistryConnectionId}' is not used: the base image is an OCI layout folder on the agent.`,
      );
    return { target, base: LayoutImageSource.open(params.baseImage.ref.path) };
  }
  const baseRef = params.baseImage.ref;
  const baseRegistry = baseRef.registry;
  if (target && sameHost(baseRegistry, target.registry))
    return { target, base: new RegistryImageSource(target, baseRef.repository) };
  if (params.baseRegistryConnectionId) {
    const rc = registryConnection('baseRegistryConnection', params.baseRegistryConnectionId);
    if (!sameHost(rc.registry, baseRegistry)) {
      throw new InputError(
        'baseRegistryConnection',
        `service connection '${params.baseRegistryConnectionId}' is for ${rc.registry}, but the base image is on ${baseRegistry}.`,
      );
    }
    const credential: RegistryCredential =
      rc.username && rc.password
        ? {
            kind: 'basic',
            username: rc.username,
            password: rc.password,
            source: `service connection '${params.baseRegistryConnectionId}' (baseRegistryConnection)`,
          }
        : { kind: 'anonymous' };
    return {
      target,
      base: new RegistryImageSource(
        new RegistryClient(baseRegistry, { credential, insecure: rc.insecure }),
        baseRef.repository,
      ),
    };
  }
  // A public base (Docker Hub, MCR) is pulled anonymously.
  return {
    target,
    base: new RegistryImageSource(
      new RegistryClient(baseRegistry, { credential: { kind: 'anonymous' } }),
      baseRef.repository,
    ),
  };
}
