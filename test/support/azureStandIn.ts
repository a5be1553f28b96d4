/**
 * A local stand-in for the Azure services the tasks call on the Azure Resource Manager path:
 * Entra ID's token endpoint (client credentials by secret, by certificate assertion or by a
 * federated client assertion, with the discovery documents MSAL reads first), Azure DevOps'
 * OIDC token request (workload identity federation), and ARM's listClusterUserCredential /
 * listClusterAdminCredential for AKS clusters. Storage tokens are JWTs of Entra's v1 shape
 * (issuer https://sts.windows.net/<tenant>/, audience https://storage.azure.com), which Azurite
 * with `--oauth basic` accepts.
 * HTTPS with a throwaway CA: point NODE_EXTRA_CA_CERTS at `caFile` so @azure/identity trusts it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { makeServerCertificates } from './kube/certs';
import { makeTempDir } from './paths';

export interface StandInCluster {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** Kubeconfig YAML returned as the user credential (e.g. exec/kubelogin format for Entra ID clusters). */
  userKubeconfig: string;
  /** Kubeconfig returned as the admin credential; absent = local accounts disabled (400, as AKS answers). */
  adminKubeconfig?: string;
}

export interface AzureStandInOptions {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  clusters: StandInCluster[];
  /** The token the stand-in issues for the AKS server application's scope (6dae42f8-.../.default). */
  aksToken: string;
  /** Workload identity federation: the Azure DevOps side and the federated credentials in Entra ID. */
  workloadIdentity?: WorkloadIdentityOptions;
  /** App registrations that sign in with a certificate: the PEM certificate whose key signs the assertion. */
  certificateClients?: Array<{ clientId: string; certificatePem: string }>;
}

export interface WorkloadIdentityOptions {
  /** The job's System.AccessToken: the only bearer the OIDC request endpoint accepts. */
  systemAccessToken: string;
  /** Service connections Azure DevOps issues OIDC tokens for. */
  serviceConnections: Array<{ id: string; name: string }>;
  /** Federated credentials on app registrations: client id → the subject it trusts (see `oidcSubject`). */
  federatedCredentials: Array<{ clientId: string; subject: string }>;
}

export interface AzureStandIn {
  url: string;
  caFile: string;
  requests: Array<{
    method: string;
    path: string;
    scope?: string;
    /** How a token request authenticated the client. */
    clientAuth?: 'secret' | 'federatedAssertion' | 'certificateAssertion';
    /** The service connection an OIDC token was asked for. */
    serviceConnectionId?: string;
  }>;
  /** The ARM access tokens issued so far: the ARM side accepts only these. */
  armTokens: string[];
  /** OIDC tokens issued to jobs and storage access tokens issued to clients, for secret checks. */
  oidcTokens: string[];
  storageTokens: string[];
  /** System.OidcRequestUri for a job (the Azure DevOps side of this stand-in). */
  oidcRequestUri: string;
  /** Issuer of the OIDC tokens, as in a federated credential. */
  oidcIssuer: string;
  stop(): Promise<void>;
}

export const AKS_SCOPE = '6dae42f8-4368-4678-94ff-3960e28e3630/.default';
export const STORAGE_SCOPE = 'https://storage.azure.com/.default';
/** The audience Azure DevOps puts in OIDC tokens and Entra ID requires of federated assertions. */
export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The subject Azure DevOps puts in a service connection's OIDC token: sc://<org>/<project>/<connection name>. */
export function oidcSubject(serviceConnectionName: string): string {
  return `sc://contoso/ml-platform/${serviceConnectionName}`;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

function signJwt(payload: Record<string, unknown>, key: crypto.KeyObject, kid: string): string {
  const head = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid }))}.${b64url(JSON.stringify(payload))}`;
  return `${head}.${crypto.sign('sha256', Buffer.from(head), key).toString('base64url')}`;
}

interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as Record<string, unknown>,
      payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<string, unknown>,
      signingInput: `${parts[0]}.${parts[1]}`,
      signature: Buffer.from(parts[2], 'base64url'),
    };
  } catch {
    return undefined;
  }
}

/** Verifies an RS256 or PS256 signature (MSAL signs certificate assertions with either). */
function verifyJwt(jwt: DecodedJwt, key: crypto.KeyObject): boolean {
  if (jwt.header.alg === 'RS256') return crypto.verify('sha256', Buffer.from(jwt.signingInput), key, jwt.signature);
  if (jwt.header.alg === 'PS256') {
    return crypto.verify(
      'sha256',
      Buffer.from(jwt.signingInput),
      { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
      jwt.signature,
    );
  }
  return false;
}

/** Entra's answer to a client it cannot authenticate. */
function invalidClient(res: ServerResponse, status: number, code: number, text: string): void {
  const traceId = crypto.randomUUID();
  const correlationId = crypto.randomUUID();
  json(res, status, {
    error: 'invalid_client',
    error_description: `AADSTS${code}: ${text} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${new Date().toISOString().replace('T', ' ').slice(0, 19)}Z`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: 'https://login.microsoftonline.com/error?code=' + code,
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'x-ms-request-id': crypto.randomUUID() });
  res.end(JSON.stringify(body));
}

export async function startAzureStandIn(options: AzureStandInOptions): Promise<AzureStandIn> {
  const certs = await makeServerCertificates();
  const dir = makeTempDir('azure-standin-');
  const caFile = path.join(dir, 'ca.pem');
  fs.writeFileSync(caFile, certs.caPem);
  const requests: AzureStandIn['requests'] = [];
  const armTokens: string[] = [];
  const oidcTokens: string[] = [];
  const storageTokens: string[] = [];
  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = crypto.randomBytes(8).toString('hex');
  const oidcIssuer = `https://vstoken.dev.azure.com/${crypto.randomUUID()}`;
  const oidcRequestPath = `/contoso/6f1c2b0e-0000-4000-8000-000000000001/_apis/distributedtask/hubs/build/plans/${crypto.randomUUID()}/jobs/${crypto.randomUUID()}/oidctoken`;
  let url = '';

  /** An Entra v1 access token for Blob Storage; Azurite checks its issuer, audience and lifetime. */
  const storageToken = (clientId: string, clientAuth: string | undefined): string => {
    const now = Math.floor(Date.now() / 1000);
    const objectId = crypto
      .createHash('sha256')
      .update(clientId)
      .digest('hex')
      .slice(0, 32)
      .replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
    return signJwt(
      {
        aud: 'https://storage.azure.com',
        iss: `https://sts.windows.net/${options.tenantId}/`,
        iat: now,
        nbf: now,
        exp: now + 3599,
        appid: clientId,
        appidacr: clientAuth === 'secret' ? '1' : '2',
        idp: `https://sts.windows.net/${options.tenantId}/`,
        oid: objectId,
        sub: objectId,
        tid: options.tenantId,
        uti: crypto.randomBytes(16).toString('base64url'),
        ver: '1.0',
      },
      signingKey.privateKey,
      keyId,
    );
  };

  const server = createServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', url);
      const body = await readBody(req);
      const record: AzureStandIn['requests'][number] = { method: req.method ?? 'GET', path: u.pathname };
      requests.push(record);
      const tenant = options.tenantId;

      if (u.pathname === '/common/discovery/instance' || u.pathname === `/${tenant}/discovery/instance`) {
        const host = new URL(url).host;
        return json(res, 200, {
          tenant_discovery_endpoint: `${url}/${tenant}/v2.0/.well-known/openid-configuration`,
          'api-version': '1.1',
          metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
        });
      }
      if (u.pathname === `/${tenant}/v2.0/.well-known/openid-configuration`) {
        return json(res, 200, {
          token_endpoint: `${url}/${tenant}/oauth2/v2.0/token`,
          authorization_endpoint: `${url}/${tenant}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${url}/${tenant}/oauth2/v2.0/logout`,
          device_authorization_endpoint: `${url}/${tenant}/oauth2/v2.0/devicecode`,
          issuer: `${url}/${tenant}/v2.0`,
          jwks_uri: `${url}/${tenant}/discovery/v2.0/keys`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          subject_types_supported: ['pairwise'],
          id_token_signing_alg_values_supported: ['RS256'],
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'tid'],
          tenant_region_scope: 'EU',
          cloud_instance_name: 'microsoftonline.com',
        });
      }
      if (req.method === 'POST' && u.pathname === oidcRequestPath) {
        // Azure DevOps' OIDC token request, as the agent's Azure tasks make it.
        const connectionId = u.searchParams.get('serviceConnectionId') ?? '';
        record.serviceConnectionId = connectionId;
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const wif = options.workloadIdentity;
        if (!wif || bearer !== wif.systemAccessToken) {
          return json(res, 401, {
            $id: '1',
            innerException: null,
            message: 'TF400813: The user is not authorized to access this resource.',
            typeName:
              'Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, Microsoft.TeamFoundation.Framework.Server',
            typeKey: 'UnauthorizedRequestException',
            errorCode: 0,
            eventId: 3000,
          });
        }
        if (!u.searchParams.get('api-version'))
          return json(res, 400, {
            message: 'No api-version was supplied for the POST request.',
            typeKey: 'VssVersionNotSpecifiedException',
          });
        const connection = wif.serviceConnections.find((c) => c.id === connectionId);
        if (!connection) {
          return json(res, 401, {
            $id: '1',
            innerException: null,
            message: `TF400813: The service connection ${connectionId} does not exist or is not authorized for use in this pipeline.`,
            typeKey: 'UnauthorizedRequestException',
            errorCode: 0,
            eventId: 3000,
          });
        }
        const now = Math.floor(Date.now() / 1000);
        const oidcToken = signJwt(
          {
            jti: crypto.randomUUID(),
            sub: oidcSubject(connection.name),
            aud: TOKEN_EXCHANGE_AUDIENCE,
            iss: oidcIssuer,
            nbf: now,
            iat: now,
            exp: now + 600,
          },
          signingKey.privateKey,
          keyId,
        );
        oidcTokens.push(oidcToken);
        return json(res, 200, { oidcToken });
      }
      if (req.method === 'POST' && u.pathname === `/${tenant}/oauth2/v2.0/token`) {
        const form = new URLSearchParams(body);
        record.scope = form.get('scope') ?? undefined;
        const clientId = form.get('client_id') ?? '';
        if (form.get('grant_type') !== 'client_credentials') {
          return json(res, 400, {
            error: 'unsupported_grant_type',
            error_description: `AADSTS70003: The app requested an unsupported grant type '${form.get('grant_type')}'.`,
            error_codes: [70003],
          });
        }
        const assertion = form.get('client_assertion');
        if (assertion !== null || form.get('client_assertion_type') !== null) {
          if (form.get('client_assertion_type') !== JWT_BEARER) {
            return invalidClient(
              res,
              400,
              7000219,
              "'client_assertion' or 'client_secret' is required for the 'client_credentials' grant type (client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer).",
            );
          }
          const jwt = assertion ? decodeJwt(assertion) : undefined;
          if (!jwt) return invalidClient(res, 400, 50027, 'JWT token is invalid or malformed.');
          const now = Math.floor(Date.now() / 1000);
          const certificate = options.certificateClients?.find((c) => c.clientId === clientId);
          if (certificate) {
            // A certificate assertion: signed with the app's certificate key, issued by and for the app, aimed at this endpoint.
            record.clientAuth = 'certificateAssertion';
            const cert = new crypto.X509Certificate(certificate.certificatePem);
            const thumbprints = [
              Buffer.from(cert.fingerprint.replace(/:/g, ''), 'hex').toString('base64url'),
              Buffer.from(cert.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url'),
            ];
            if (!thumbprints.includes(String(jwt.header['x5t#S256'] ?? jwt.header.x5t)))
              return invalidClient(
                res,
                401,
                700027,
                'The certificate with identifier used to sign the client assertion is not registered on application.',
              );
            if (!verifyJwt(jwt, cert.publicKey))
              return invalidClient(res, 401, 700027, 'Client assertion failed signature validation.');
            if (jwt.payload.iss !== clientId || jwt.payload.sub !== clientId)
              return invalidClient(res, 401, 700023, 'Client assertion issuer and subject must be the client id.');
            if (jwt.payload.aud !== `${url}/${tenant}/oauth2/v2.0/token`)
              return invalidClient(
                res,
                401,
                700021,
                `Client assertion audience claim does not match Realm issuer. Review the documentation.`,
              );
            if (typeof jwt.payload.exp !== 'number' || jwt.payload.exp < now)
              return invalidClient(res, 401, 700024, 'Client assertion is not within its valid time range.');
          } else {
            // A federated assertion: an OIDC token this stand-in issued, for a subject the app trusts.
            record.clientAuth = 'federatedAssertion';
            const wif = options.workloadIdentity;
            const trusted = wif?.federatedCredentials.filter((f) => f.clientId === clientId) ?? [];
            if (trusted.length === 0)
              return invalidClient(
                res,
                400,
                700016,
                `Application with identifier '${clientId}' was not found in the directory '${tenant}', or it has no federated credentials.`,
              );
            if (jwt.payload.iss !== oidcIssuer || jwt.header.kid !== keyId || !verifyJwt(jwt, signingKey.publicKey)) {
              return invalidClient(
                res,
                400,
                700211,
                `No matching federated identity record found for presented assertion issuer '${String(jwt.payload.iss)}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
              );
            }
            if (jwt.payload.aud !== TOKEN_EXCHANGE_AUDIENCE)
              return invalidClient(
                res,
                400,
                700212,
                `No matching federated identity record found for presented assertion audience '${String(jwt.payload.aud)}'.`,
              );
            if (typeof jwt.payload.exp !== 'number' || jwt.payload.exp < now)
              return invalidClient(res, 400, 700024, 'Client assertion is not within its valid time range.');
            if (!trusted.some((f) => f.subject === jwt.payload.sub)) {
              return invalidClient(
                res,
                400,
                70021,
                `No matching federated identity record found for presented assertion. Assertion Issuer: '${oidcIssuer}'. Assertion Subject: '${String(jwt.payload.sub)}'. Assertion Audience: '${TOKEN_EXCHANGE_AUDIENCE}'.`,
              );
            }
          }
        } else {
          record.clientAuth = 'secret';
          if (clientId !== options.clientId || form.get('client_secret') !== options.clientSecret) {
            return json(res, 401, {
              error: 'invalid_client',
              error_description: 'AADSTS7000215: Invalid client secret provided.',
              error_codes: [7000215],
            });
          }
        }
        const scopes = (form.get('scope') ?? '').split(' ');
        let token: string;
        if (scopes.includes(AKS_SCOPE)) token = options.aksToken;
        else if (scopes.some((s) => s === `${url}/.default` || s === `${url}//.default`)) {
          token = `arm-${crypto.randomBytes(18).toString('hex')}`;
          armTokens.push(token);
        } else if (scopes.includes(STORAGE_SCOPE)) {
          token = storageToken(clientId, record.clientAuth);
          storageTokens.push(token);
        } else
          return json(res, 400, {
            error: 'invalid_scope',
            error_description: `AADSTS70011: The provided value for scope ${form.get('scope')} is not valid.`,
          });
        return json(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
      }

      const arm =
        /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerService\/managedClusters\/([^/]+)\/(listClusterUserCredential|listClusterAdminCredential)$/i.exec(
          u.pathname,
        );
      if (arm && req.method === 'POST') {
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        if (!bearer || !armTokens.includes(bearer))
          return json(res, 401, {
            error: { code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' },
          });
        if (!u.searchParams.get('api-version'))
          return json(res, 400, {
            error: {
              code: 'MissingApiVersionParameter',
              message: 'The api-version query parameter (?api-version=) is required for all requests.',
            },
          });
        const [, sub, rg, name, op] = arm;
        const cluster = options.clusters.find(
          (c) =>
            c.subscriptionId === sub &&
            c.resourceGroup.toLowerCase() === rg.toLowerCase() &&
            c.name.toLowerCase() === name.toLowerCase(),
        );
        if (!cluster) {
          return json(res, 404, {
            error: {
              code: 'ResourceNotFound',
              message: `The Resource 'Microsoft.ContainerService/managedClusters/${name}' under resource group '${rg}' was not found.`,
            },
          });
        }
        const admin = op.toLowerCase() === 'listclusteradmincredential';
        const kubeconfig = admin ? cluster.adminKubeconfig : cluster.userKubeconfig;
        if (!kubeconfig)
          return json(res, 400, {
            error: {
              code: 'BadRequest',
              message:
                'Getting static credential is not allowed because this cluster is set to disable local accounts.',
            },
          });
        return json(res, 200, {
          kubeconfigs: [
            { name: admin ? 'clusterAdmin' : 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') },
          ],
        });
      }
      json(res, 404, { error: { code: 'NotFound', message: `no route for ${req.method} ${u.pathname}` } });
    })().catch((err: unknown) => json(res, 500, { error: { code: 'InternalError', message: String(err) } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    caFile,
    requests,
    armTokens,
    oidcTokens,
    storageTokens,
    oidcRequestUri: `${url}${oidcRequestPath}`,
    oidcIssuer,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
