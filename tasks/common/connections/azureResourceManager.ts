import {
  type AccessToken,
  ClientAssertionCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  type GetTokenOptions,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import * as tl from 'azure-pipelines-task-lib/task';

import { errorMessage, InputError, TaskError } from '../errors';
import { isTransientStatus, parseRetryAfter, TransientHttpError, withRetry } from '../retry';
import { readSecretQuietly, registerSecret, scrub } from '../secrets';

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
  azurecloud: {
    authorityHost: 'https://login.microsoftonline.com',
    resourceManagerUrl: 'https://management.azure.com/',
    storageSuffix: 'core.windows.net',
  },
  azurechinacloud: {
    authorityHost: 'https://login.chinacloudapi.cn',
    resourceManagerUrl: 'https://management.chinacloudapi.cn/',
    storageSuffix: 'core.chinacloudapi.cn',
  },
  azureusgovernment: {
    authorityHost: 'https://login.microsoftonline.us',
    resourceManagerUrl: 'https://management.usgovcloudapi.net/',
    storageSuffix: 'core.usgovcloudapi.net',
  },
  azuregermancloud: {
    authorityHost: 'https://login.microsoftonline.de',
    resourceManagerUrl: 'https://management.microsoftazure.de/',
    storageSuffix: 'core.cloudapi.de',
  },
};

/**
 * Entra ID's answer as MSAL reports it carries timestamps and ids around the one sentence a user
 * needs: keep "AADSTSnnnn: what is wrong" and the correlation id support asks for.
 */
export function entraErrorText(message: string): string {
  const description = /(AADSTS\d+:[\s\S]*?)(?=\s+-?\s*(?:Trace ID|Correlation ID|Timestamp):|$)/
    .exec(message)?.[1]
    ?.trim();
  if (!description) return message;
  const correlationId = /Correlation ID: ([0-9a-f-]{36})/i.exec(message)?.[1];
  return correlationId ? `${description} (Correlation ID: ${correlationId})` : description;
}

/** Registers every token it hands out, so no access token can reach the log. */
class SecretRegisteringCredential implements TokenCredential {
  /** `hint` adds what to fix for a failure this connection's scheme explains. */
  constructor(
    private readonly inner: TokenCredential,
    private readonly hint: (message: string) => string | undefined = () => undefined,
  ) {}
  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    try {
      const token = await this.inner.getToken(scopes, options);
      if (token) registerSecret(token.token);
      return token;
    } catch (err) {
      const message = entraErrorText(scrub(errorMessage(err)));
      const hint = this.hint(message);
      throw new TaskError(
        `Could not get an Azure access token for ${Array.isArray(scopes) ? scopes.join(' ') : scopes}: ${message}${hint ? ` ${hint}` : ''}`,
        { cause: err },
      );
    }
  }
}

/** The issuer and subject of an OIDC token (not secret: they are what a federated credential names), and its expiry. */
function oidcClaims(token: string): { issuer?: string; subject?: string; expiresAt?: number } {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      iss?: unknown;
      sub?: unknown;
      exp?: unknown;
    };
    return {
      issuer: typeof payload.iss === 'string' ? payload.iss : undefined,
      subject: typeof payload.sub === 'string' ? payload.sub : undefined,
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    };
  } catch {
    return {};
  }
}

/** Entra ID's codes for a federated assertion it does not trust (issuer, subject, audience, lifetime, app). */
const FEDERATION_ERRORS = /AADSTS(70021|700211|700212|700213|700016|700024)\b/;

function endpointAuth(id: string, key: string): string | undefined {
  return tl.getEndpointAuthorizationParameter(id, key, true) || undefined;
}

function endpointData(id: string, key: string): string | undefined {
  return tl.getEndpointDataParameter(id, key, true) || undefined;
}

/** The job's System.AccessToken, which the OIDC token request is made with. */
export function systemAccessToken(): string | undefined {
  return readSecretQuietly(
    () =>
      tl.getVariable('System.AccessToken') ??
      tl.getEndpointAuthorizationParameter('SystemVssConnection', 'AccessToken', true),
  );
}

/**
 * Workload identity federation: ask Azure DevOps for an ID token for this service connection
 * (the same request the agent's own Azure tasks make) and hand it to Entra ID as a client assertion.
 */
export async function requestOidcToken(connectionId: string, fetchImpl: typeof fetch = fetch): Promise<string> {
  const requestUri = tl.getVariable('System.OidcRequestUri') ?? process.env.SYSTEM_OIDCREQUESTURI;
  if (!requestUri) {
    throw new TaskError(
      'The service connection uses workload identity federation, but this job has no System.OidcRequestUri. Run the task on an agent version 3.227 or later, in a pipeline job.',
    );
  }
  const accessToken = systemAccessToken();
  if (!accessToken) {
    throw new TaskError(
      'The service connection uses workload identity federation, but System.AccessToken is not available to this job. Allow scripts to access the OAuth token, or map System.AccessToken.',
    );
  }
  const url = new URL(requestUri);
  url.searchParams.set('api-version', '7.1');
  url.searchParams.set('serviceConnectionId', connectionId);
  const oidcToken = await withRetry(
    async () => {
      const res = await fetchImpl(url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${accessToken}`,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
        body: '{}',
      });
      if (isTransientStatus(res.status))
        throw new TransientHttpError(
          res.status,
          `OIDC token request answered ${res.status}`,
          parseRetryAfter(res.headers.get('retry-after')),
        );
      if (res.status === 401 || res.status === 403) {
        const said = await res
          .text()
          .then((text) => (JSON.parse(text) as { message?: string }).message)
          .catch(() => undefined);
        throw new TaskError(
          `Azure DevOps refused the OIDC token request for service connection ${connectionId} (HTTP ${res.status}${said ? `: ${scrub(said)}` : ''}). ` +
            "The job's access token (System.AccessToken) was not accepted for it: if you map System.AccessToken yourself, pass $(System.AccessToken) unchanged; " +
            "check that the service connection is authorized for this pipeline and that the job's authorization scope can use it.",
        );
      }
      if (!res.ok)
        throw new TaskError(
          `The OIDC token request for service connection ${connectionId} failed with HTTP ${res.status}: ${scrub(await res.text())}`,
        );
      const body = (await res.json()) as { oidcToken?: string };
      if (!body.oidcToken)
        throw new TaskError(`The OIDC token request for service connection ${connectionId} returned no token.`);
      return body.oidcToken;
    },
    { what: 'OIDC token request' },
  );
  return registerSecret(oidcToken);
}

/**
 * Turns an Azure Resource Manager service connection (by id, as picked in `inputName`) into a
 * TokenCredential for the connection's cloud.
 */
export function azureConnection(inputName: string, connectionId: string): AzureConnection {
  const rawScheme = tl.getEndpointAuthorizationScheme(connectionId, true);
  if (!rawScheme) {
    throw new InputError(
      inputName,
      `service connection '${connectionId}' was not found or is not shared with this pipeline. Pick an Azure Resource Manager service connection and authorize it for this pipeline.`,
    );
  }
  const environment = endpointData(connectionId, 'environment') ?? 'AzureCloud';
  const cloud = CLOUDS[environment.toLowerCase()] ?? CLOUDS.azurecloud;
  const authorityHost = (
    endpointData(connectionId, 'environmentAuthorityUrl') ??
    endpointData(connectionId, 'activeDirectoryAuthority') ??
    cloud.authorityHost
  ).replace(/\/+$/, '');
  const resourceManagerUrl =
    tl.getEndpointUrl(connectionId, true) ||
    endpointData(connectionId, 'resourceManagerUrl') ||
    cloud.resourceManagerUrl;
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
  let federationHint: ((message: string) => string | undefined) | undefined;
  switch (rawScheme.toLowerCase()) {
    case 'workloadidentityfederation': {
      scheme = 'WorkloadIdentityFederation';
      if (!tenantId || !clientId)
        throw new InputError(
          inputName,
          `service connection '${connectionId}' has no tenant or client id. Edit the service connection and verify it.`,
        );
      // MSAL asks for the assertion more than once per sign-in: reuse an OIDC token until shortly before it expires.
      let lastOidcToken = '';
      let reuseUntil = 0;
      const assertion = async (): Promise<string> => {
        if (!lastOidcToken || Date.now() >= reuseUntil) {
          lastOidcToken = await requestOidcToken(connectionId);
          const expiresAt = oidcClaims(lastOidcToken).expiresAt;
          reuseUntil = expiresAt ? expiresAt - 60_000 : Date.now() + 30_000;
        }
        return lastOidcToken;
      };
      credential = new ClientAssertionCredential(tenantId, clientId, assertion, common);
      federationHint = (message) => {
        if (!FEDERATION_ERRORS.test(message)) return undefined;
        const { issuer, subject } = oidcClaims(lastOidcToken);
        return (
          `Entra ID did not accept this job's OIDC token for service connection ${connectionId}: the app registration ${clientId} in tenant ${tenantId} needs a federated credential ` +
          `with issuer '${issuer ?? '?'}', subject '${subject ?? '?'}' and audience api://AzureADTokenExchange (the service connection's "Workload Identity federation details" show them).`
        );
      };
      break;
    }
    case 'serviceprincipal': {
      scheme = 'ServicePrincipal';
      if (!tenantId || !clientId)
        throw new InputError(
          inputName,
          `service connection '${connectionId}' has no tenant or service principal id. Edit the service connection and verify it.`,
        );
      const authType = (endpointAuth(connectionId, 'authenticationType') ?? 'spnKey').toLowerCase();
      if (authType === 'spncertificate') {
        const pem = readSecretQuietly(() => endpointAuth(connectionId, 'servicePrincipalCertificate'));
        if (!pem)
          throw new InputError(
            inputName,
            `service connection '${connectionId}' uses a certificate but has none. Upload the certificate to the service connection.`,
          );
        credential = new ClientCertificateCredential(tenantId, clientId, { certificate: pem }, common);
      } else {
        const secret = readSecretQuietly(() => endpointAuth(connectionId, 'serviceprincipalkey'));
        if (!secret)
          throw new InputError(
            inputName,
            `service connection '${connectionId}' has no service principal key. Edit the service connection and give its secret.`,
          );
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
      throw new InputError(
        inputName,
        `service connection '${connectionId}' uses the authentication scheme '${rawScheme}', which this task does not support. Use workload identity federation, a service principal or a managed identity.`,
      );
  }
  tl.debug(
    `Azure connection ${connectionId}: scheme ${scheme}, environment ${environment}, authority ${authorityHost}`,
  );
  return {
    id: connectionId,
    scheme,
    credential: new SecretRegisteringCredential(credential, federationHint),
    tenantId,
    subscriptionId,
    environment,
    authorityHost,
    resourceManagerUrl,
    storageSuffix,
  };
}
