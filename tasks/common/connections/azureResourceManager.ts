import * as tl from 'azure-pipelines-task-lib/task';
import {
  ClientAssertionCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  type AccessToken,
  type GetTokenOptions,
  type TokenCredential,
} from '@azure/identity';
import { InputError, TaskError, errorMessage } from '../errors';
import { readSecretQuietly, registerSecret, scrub } from '../secrets';
import { withRetry, TransientHttpError, isTransientStatus, parseRetryAfter } from '../retry';

export type AzureAuthScheme = 'WorkloadIdentityFederation' | 'ServicePrincipal' | 'ManagedServiceIdentity';

/** What a task needs from an Azure Resource Manager service connection. */
export interface AzureConnection {
  id: string;
  scheme: AzureAuthScheme;
  credential: TokenCredential;
  tenantId: string;
  subscriptionId?: string;
  environment: string;
  authorityHost: string;
  resourceManagerUrl: string;
  /** e.g. core.windows.net: storage accounts are <name>.blob.<suffix>. */
  storageSuffix: string;
}

interface CloudDefaults {
  authorityHost: string;
  resourceManagerUrl: string;
  storageSuffix: string;
}

const CLOUDS: Record<string, CloudDefaults> = {
  azurecloud: { authorityHost: 'https://login.microsoftonline.com', resourceManagerUrl: 'https://management.azure.com/', storageSuffix: 'core.windows.net' },
  azurechinacloud: { authorityHost: 'https://login.chinacloudapi.cn', resourceManagerUrl: 'https://management.chinacloudapi.cn/', storageSuffix: 'core.chinacloudapi.cn' },
  azureusgovernment: { authorityHost: 'https://login.microsoftonline.us', resourceManagerUrl: 'https://management.usgovcloudapi.net/', storageSuffix: 'core.usgovcloudapi.net' },
  azuregermancloud: { authorityHost: 'https://login.microsoftonline.de', resourceManagerUrl: 'https://management.microsoftazure.de/', storageSuffix: 'core.cloudapi.de' },
};

/** Registers every token it hands out, so no access token can reach the log. */
class SecretRegisteringCredential implements TokenCredential {
  constructor(private readonly inner: TokenCredential) {}
  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    try {
      const token = await this.inner.getToken(scopes, options);
      if (token) registerSecret(token.token);
      return token;
    } catch (err) {
      throw new TaskError(`Could not get an Azure access token for ${Array.isArray(scopes) ? scopes.join(' ') : scopes}: ${scrub(errorMessage(err))}`, { cause: err });
    }
  }
}

function endpointAuth(id: string, key: string): string | undefined {
  return tl.getEndpointAuthorizationParameter(id, key, true) || undefined;
}

function endpointData(id: string, key: string): string | undefined {
  return tl.getEndpointDataParameter(id, key, true) || undefined;
}

/** The job's System.AccessToken, which the OIDC token request is made with. */
export function systemAccessToken(): string | undefined {
  return readSecretQuietly(() => tl.getVariable('System.AccessToken') ?? tl.getEndpointAuthorizationParameter('SystemVssConnection', 'AccessToken', true));
}

/**
 * Workload identity federation: ask Azure DevOps for an ID token for this service connection
 * (the same request the agent's own Azure tasks make) and hand it to Entra ID as a client assertion.
 */
export async function requestOidcToken(connectionId: string, fetchImpl: typeof fetch = fetch): Promise<string> {
  const requestUri = tl.getVariable('System.OidcRequestUri') ?? process.env.SYSTEM_OIDCREQUESTURI;
  if (!requestUri) {
    throw new TaskError('The service connection uses workload identity federation, but this job has no System.OidcRequestUri. Run the task on an agent version 3.227 or later, in a pipeline job.');
  }
  const accessToken = systemAccessToken();
  if (!accessToken) {
    throw new TaskError('The service connection uses workload identity federation, but System.AccessToken is not available to this job. Allow scripts to access the OAuth token, or map System.AccessToken.');
  }
  const url = new URL(requestUri);
  url.searchParams.set('api-version', '7.1');
  url.searchParams.set('serviceConnectionId', connectionId);
  const oidcToken = await withRetry(async () => {
    const res = await fetchImpl(url, { method: 'POST', headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json', Accept: 'application/json' }, body: '{}' });
    if (isTransientStatus(res.status)) throw new TransientHttpError(res.status, `OIDC token request answered ${res.status}`, parseRetryAfter(res.headers.get('retry-after')));
    if (!res.ok) throw new TaskError(`The OIDC token request for service connection ${connectionId} failed with HTTP ${res.status}: ${scrub(await res.text())}`);
    const body = (await res.json()) as { oidcToken?: string };
    if (!body.oidcToken) throw new TaskError(`The OIDC token request for service connection ${connectionId} returned no token.`);
    return body.oidcToken;
  }, { what: 'OIDC token request' });
  return registerSecret(oidcToken);
}

/**
 * Turns an Azure Resource Manager service connection (by id, as picked in `inputName`) into a
 * TokenCredential for the connection's cloud.
 */
export function azureConnection(inputName: string, connectionId: string): AzureConnection {
  const rawScheme = tl.getEndpointAuthorizationScheme(connectionId, true);
  if (!rawScheme) {
    throw new InputError(inputName, `service connection '${connectionId}' was not found or is not shared with this pipeline. Pick an Azure Resource Manager service connection and authorize it for this pipeline.`);
  }
  const environment = endpointData(connectionId, 'environment') ?? 'AzureCloud';
  const cloud = CLOUDS[environment.toLowerCase()] ?? CLOUDS.azurecloud;
  const authorityHost = (endpointData(connectionId, 'environmentAuthorityUrl') ?? endpointData(connectionId, 'activeDirectoryAuthority') ?? cloud.authorityHost).replace(/\/+$/, '');
  const resourceManagerUrl = tl.getEndpointUrl(connectionId, true) || endpointData(connectionId, 'resourceManagerUrl') || cloud.resourceManagerUrl;
  const storageSuffix = endpointData(connectionId, 'storageEndpointSuffix')?.replace(/^\./, '') ?? cloud.storageSuffix;
  const tenantId = endpointAuth(connectionId, 'tenantid') ?? '';
  const clientId = endpointAuth(connectionId, 'serviceprincipalid');
  const subscriptionId = endpointData(connectionId, 'subscriptionId');
  // Instance discovery asks login.microsoftonline.com about the authority; an authority that is not a
  // public cloud's (Azure Stack, a private sovereign endpoint) is trusted as configured instead.
  const knownAuthority = Object.values(CLOUDS).some((c) => c.authorityHost === authorityHost);
  const common = { authorityHost, additionallyAllowedTenants: ['*'], disableInstanceDiscovery: !knownAuthority };

  let scheme: AzureAuthScheme;
  let credential: TokenCredential;
  switch (rawScheme.toLowerCase()) {
    case 'workloadidentityfederation': {
      scheme = 'WorkloadIdentityFederation';
      if (!tenantId || !clientId) throw new InputError(inputName, `service connection '${connectionId}' has no tenant or client id. Edit the service connection and verify it.`);
      credential = new ClientAssertionCredential(tenantId, clientId, () => requestOidcToken(connectionId), common);
      break;
    }
    case 'serviceprincipal': {
      scheme = 'ServicePrincipal';
      if (!tenantId || !clientId) throw new InputError(inputName, `service connection '${connectionId}' has no tenant or service principal id. Edit the service connection and verify it.`);
      const authType = (endpointAuth(connectionId, 'authenticationType') ?? 'spnKey').toLowerCase();
      if (authType === 'spncertificate') {
        const pem = readSecretQuietly(() => endpointAuth(connectionId, 'servicePrincipalCertificate'));
        if (!pem) throw new InputError(inputName, `service connection '${connectionId}' uses a certificate but has none. Upload the certificate to the service connection.`);
        credential = new ClientCertificateCredential(tenantId, clientId, { certificate: pem }, common);
      } else {
        const secret = readSecretQuietly(() => endpointAuth(connectionId, 'serviceprincipalkey'));
        if (!secret) throw new InputError(inputName, `service connection '${connectionId}' has no service principal key. Edit the service connection and give its secret.`);
        credential = new ClientSecretCredential(tenantId, clientId, secret, common);
      }
      break;
    }
    case 'managedserviceidentity': {
      scheme = 'ManagedServiceIdentity';
      credential = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
      break;
    }
    default:
      throw new InputError(inputName, `service connection '${connectionId}' uses the authentication scheme '${rawScheme}', which this task does not support. Use workload identity federation, a service principal or a managed identity.`);
  }
  tl.debug(`Azure connection ${connectionId}: scheme ${scheme}, environment ${environment}, authority ${authorityHost}`);
  return { id: connectionId, scheme, credential: new SecretRegisteringCredential(credential), tenantId, subscriptionId, environment, authorityHost, resourceManagerUrl, storageSuffix };
}
