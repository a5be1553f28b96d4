/**
 * Service connection → a verified connection to the cluster's API server. An Azure Resource
 * Manager connection fetches the cluster's kubeconfig from ARM; for Entra ID clusters the same
 * connection's credential gets the AKS token itself, so no kubelogin binary is needed.
 */
import '../common/kube/quietPunycodeWarning';

import type { TokenCredential } from '@azure/identity';
import { KubeConfig } from '@kubernetes/client-node';
import * as tl from 'azure-pipelines-task-lib/task';

import { azureConnection } from '../common/connections/azureResourceManager';
import { type KubernetesConnection, kubernetesConnection } from '../common/connections/kubernetes';
import { errorMessage, InputError, TaskError } from '../common/errors';
import { clusterAccessOf, KubeClient } from '../common/kube/client';
import { registerSecret, scrub } from '../common/secrets';
import type { ClusterParameters } from './parameters';

/** The Entra ID application every AKS cluster's API server accepts tokens for. */
export const AKS_SERVER_APP_ID = '6dae42f8-4368-4678-94ff-3960e28e3630';
export const AKS_SCOPE = `${AKS_SERVER_APP_ID}/.default`;

export interface ClusterConnection {
  client: KubeClient;
  /** For the log and summary: which cluster, through what. */
  description: string;
}

/** Loads a kubeconfig and picks the context; an unknown context is the user's to fix. */
export function loadKubeConfig(text: string, context: string | undefined, inputName: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
  } catch (err) {
    throw new InputError(inputName, `the kubeconfig could not be read: ${scrub(errorMessage(err))}`);
  }
  if (context) {
    if (!kc.getContextObject(context)) {
      throw new InputError(
        inputName,
        `the kubeconfig has no context '${context}'. It has: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        }.`,
      );
    }
    kc.setCurrentContext(context);
  } else if (!kc.getCurrentContext() && kc.getContexts().length) {
    kc.setCurrentContext(kc.getContexts()[0].name);
  }
  if (!kc.getCurrentCluster())
    throw new InputError(inputName, 'the kubeconfig has no cluster for its current context.');
  return kc;
}

/** A kubeconfig for a server URL, a bearer token and an optional CA (base64 of PEM, or PEM). */
export function tokenKubeConfig(
  server: string,
  token: string,
  caData: string | undefined,
  skipTlsVerify: boolean,
): KubeConfig {
  const kc = new KubeConfig();
  const ca = caData && /-----BEGIN/.test(caData) ? Buffer.from(caData).toString('base64') : caData;
  kc.loadFromClusterAndUser(
    { name: 'cluster', server, caData: ca || undefined, skipTLSVerify: skipTlsVerify },
    { name: 'deployer', token },
  );
  return kc;
}

/** Users that would need kubelogin (exec) or the removed azure auth-provider: Entra ID clusters. */
export function needsEntraToken(kc: KubeConfig): boolean {
  const user = kc.getCurrentUser();
  if (!user) return false;
  // client-node types authProvider and exec as `any`: read them as the kubeconfig fields they are.
  const { authProvider, exec } = user as { authProvider?: { name?: string }; exec?: { command?: string } };
  if (authProvider?.name === 'azure') return true;
  const command = exec?.command ?? '';
  return /(^|[\\/])kubelogin(\.exe)?$/i.test(command);
}

/** Replaces the current user with a bearer token, keeping cluster, CA and TLS settings. */
export function withBearerToken(kc: KubeConfig, token: string): KubeConfig {
  const cluster = kc.getCurrentCluster()!;
  const out = new KubeConfig();
  out.loadFromClusterAndUser({ ...cluster }, { name: 'entra-token', token });
  return out;
}

async function fromKubernetesConnection(
  inputName: string,
  connection: KubernetesConnection,
): Promise<ClusterConnection> {
  let kc: KubeConfig;
  if (connection.kind === 'kubeconfig') {
    kc = loadKubeConfig(connection.kubeconfig, connection.context, inputName);
  } else {
    kc = tokenKubeConfig(connection.server, connection.token, connection.caData, connection.skipTlsVerify);
  }
  const access = await clusterAccessOf(kc);
  if (connection.skipTlsVerify) {
    access.rejectUnauthorized = false;
    tl.warning(
      `The service connection accepts untrusted certificates: the API server's identity at ${access.server} is not verified.`,
    );
  }
  return {
    client: new KubeClient(access),
    description: `${access.server} (Kubernetes service connection, ${connection.kind === 'kubeconfig' ? `context ${kc.getCurrentContext()}` : 'service account'})`,
  };
}

export interface ArmCredentialSource {
  /** The kubeconfig ARM hands out for the cluster (user or admin credentials). */
  listKubeconfig(resourceGroup: string, clusterName: string, admin: boolean): Promise<string>;
  credential: TokenCredential;
}

export function armCredentialSource(inputName: string, connectionId: string): ArmCredentialSource {
  const azure = azureConnection(inputName, connectionId);
  if (!azure.subscriptionId)
    throw new InputError(
      inputName,
      `service connection '${connectionId}' has no subscription. Use a connection scoped to the subscription that holds the cluster.`,
    );
  const endpoint = azure.resourceManagerUrl.replace(/\/+$/, '');
  const subscriptionId = azure.subscriptionId;
  // The ARM client is loaded on this path only: a Kubernetes-connection deploy never pays for it.
  const client = import('@azure/arm-containerservice').then(
    ({ ContainerServiceClient }) =>
      new ContainerServiceClient(azure.credential, subscriptionId, {
        endpoint,
        credentials: { scopes: [`${endpoint}/.default`] },
      }),
  );
  return {
    credential: azure.credential,
    async listKubeconfig(resourceGroup, clusterName, admin) {
      let result;
      try {
        const clusters = (await client).managedClusters;
        result = admin
          ? await clusters.listClusterAdminCredentials(resourceGroup, clusterName)
          : await clusters.listClusterUserCredentials(resourceGroup, clusterName, { format: 'exec' });
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        const hint =
          status === 404
            ? ` Check the resource group '${resourceGroup}' and cluster name '${clusterName}' in subscription ${azure.subscriptionId}.`
            : status === 403
              ? ` The service connection's identity needs the "Azure Kubernetes Service Cluster ${admin ? 'Admin' : 'User'} Role" on the cluster.`
              : '';
        if (err instanceof TaskError) throw err;
        throw new TaskError(
          `Could not get the ${admin ? 'admin' : 'user'} credentials of AKS cluster ${resourceGroup}/${clusterName}: ${scrub(errorMessage(err))}.${hint}`,
          { cause: err },
        );
      }
      const value = result.kubeconfigs?.[0]?.value;
      if (!value) throw new TaskError(`Azure returned no kubeconfig for AKS cluster ${resourceGroup}/${clusterName}.`);
      return registerSecret(Buffer.from(value).toString('utf8'));
    },
  };
}

async function fromAzure(
  params: Extract<ClusterParameters, { type: 'azureResourceManager' }>,
  source: ArmCredentialSource,
): Promise<ClusterConnection> {
  const text = await source.listKubeconfig(params.resourceGroup, params.clusterName, params.useAdminCredentials);
  let kc = loadKubeConfig(text, undefined, params.connectionInput);
  let how = params.useAdminCredentials ? 'admin credentials' : 'user credentials';
  if (needsEntraToken(kc)) {
    const token = await source.credential.getToken(AKS_SCOPE);
    if (!token)
      throw new TaskError(`The service connection gave no Entra ID token for the AKS API server (${AKS_SCOPE}).`);
    registerSecret(token.token);
    kc = withBearerToken(kc, token.token);
    how = 'Entra ID token of the service connection';
  }
  const access = await clusterAccessOf(kc);
  return {
    client: new KubeClient(access),
    description: `AKS ${params.resourceGroup}/${params.clusterName} at ${access.server} (${how})`,
  };
}

export async function connectToCluster(
  params: ClusterParameters,
  armSource: (inputName: string, id: string) => ArmCredentialSource = armCredentialSource,
): Promise<ClusterConnection> {
  if (params.type === 'kubernetesServiceConnection') {
    return fromKubernetesConnection(
      params.connectionInput,
      kubernetesConnection(params.connectionInput, params.connectionId),
    );
  }
  return fromAzure(params, armSource(params.connectionInput, params.connectionId));
}
