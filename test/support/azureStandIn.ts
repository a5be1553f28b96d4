/**
 * A local stand-in for the two Azure services DeployToAKS calls on the Azure Resource Manager
 * path: Entra ID's token endpoint (client credentials, with the discovery documents MSAL reads
 * first) and ARM's listClusterUserCredential / listClusterAdminCredential for AKS clusters.
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
}

export interface AzureStandIn {
  url: string;
  caFile: string;
  requests: Array<{ method: string; path: string; scope?: string }>;
  /** The ARM access tokens issued so far: the ARM side accepts only these. */
  armTokens: string[];
  stop(): Promise<void>;
}

export const AKS_SCOPE = '6dae42f8-4368-4678-94ff-3960e28e3630/.default';

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
  let url = '';

  const server = createServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', url);
      const body = await readBody(req);
      const record: AzureStandIn['requests'][number] = { method: req.method ?? 'GET', path: u.pathname };
      requests.push(record);
      const tenant = options.tenantId;

      if (u.pathname === '/common/discovery/instance' || u.pathname === `/${tenant}/discovery/instance`) {
        const host = new URL(url).host;
        return json(res, 200, { tenant_discovery_endpoint: `${url}/${tenant}/v2.0/.well-known/openid-configuration`, 'api-version': '1.1', metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }] });
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
      if (req.method === 'POST' && u.pathname === `/${tenant}/oauth2/v2.0/token`) {
        const form = new URLSearchParams(body);
        record.scope = form.get('scope') ?? undefined;
        if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== options.clientId || form.get('client_secret') !== options.clientSecret) {
          return json(res, 401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] });
        }
        const scopes = (form.get('scope') ?? '').split(' ');
        let token: string;
        if (scopes.includes(AKS_SCOPE)) token = options.aksToken;
        else if (scopes.some((s) => s === `${url}/.default` || s === `${url}//.default`)) {
          token = `arm-${crypto.randomBytes(18).toString('hex')}`;
          armTokens.push(token);
        } else return json(res, 400, { error: 'invalid_scope', error_description: `AADSTS70011: The provided value for scope ${form.get('scope')} is not valid.` });
        return json(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
      }

      const arm = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerService\/managedClusters\/([^/]+)\/(listClusterUserCredential|listClusterAdminCredential)$/i.exec(u.pathname);
      if (arm && req.method === 'POST') {
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        if (!bearer || !armTokens.includes(bearer)) return json(res, 401, { error: { code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' } });
        if (!u.searchParams.get('api-version')) return json(res, 400, { error: { code: 'MissingApiVersionParameter', message: "The api-version query parameter (?api-version=) is required for all requests." } });
        const [, sub, rg, name, op] = arm;
        const cluster = options.clusters.find((c) => c.subscriptionId === sub && c.resourceGroup.toLowerCase() === rg.toLowerCase() && c.name.toLowerCase() === name.toLowerCase());
        if (!cluster) {
          return json(res, 404, { error: { code: 'ResourceNotFound', message: `The Resource 'Microsoft.ContainerService/managedClusters/${name}' under resource group '${rg}' was not found.` } });
        }
        const admin = op.toLowerCase() === 'listclusteradmincredential';
        const kubeconfig = admin ? cluster.adminKubeconfig : cluster.userKubeconfig;
        if (!kubeconfig) return json(res, 400, { error: { code: 'BadRequest', message: 'Getting static credential is not allowed because this cluster is set to disable local accounts.' } });
        return json(res, 200, { kubeconfigs: [{ name: admin ? 'clusterAdmin' : 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') }] });
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
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
