import * as tl from 'azure-pipelines-task-lib/task';
import * as yaml from 'js-yaml';

import { InputError } from '../errors';
import { readSecretQuietly, registerSecret } from '../secrets';

/** A Kubernetes service connection, reduced to what a client needs. */
export type KubernetesConnection =
  | { id: string; kind: 'kubeconfig'; kubeconfig: string; context?: string; skipTlsVerify: boolean }
  | { id: string; kind: 'serviceAccount'; server: string; token: string; caData?: string; skipTlsVerify: boolean };

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The service connection stores the service account's secret fields as they were in the Secret: base64. */
function decodeToken(raw: string): string {
  const trimmed = raw.trim();
  if (JWT.test(trimmed)) return trimmed;
  const decoded = Buffer.from(trimmed, 'base64').toString('utf8').trim();
  return decoded && /^[\x21-\x7e]+$/.test(decoded) ? decoded : trimmed;
}

/**
 * A kubeconfig is mostly not secret (server, names, CA); masking it whole would also hide the
 * server URL in every log line. Its credentials are registered one by one instead.
 */
export function registerKubeconfigSecrets(kubeconfig: string): void {
  let doc: unknown;
  try {
    doc = yaml.load(kubeconfig);
  } catch {
    registerSecret(kubeconfig); // unreadable: mask all of it
    return;
  }
  const users = (doc as { users?: Array<{ user?: Record<string, unknown> }> } | undefined)?.users ?? [];
  for (const { user } of users) {
    for (const key of ['token', 'password', 'client-key-data', 'client-certificate-data']) {
      const value = user?.[key];
      if (typeof value === 'string') registerSecret(value);
    }
  }
}

export function kubernetesConnection(inputName: string, connectionId: string): KubernetesConnection {
  const scheme = tl.getEndpointAuthorizationScheme(connectionId, true);
  if (!scheme) {
    throw new InputError(
      inputName,
      `service connection '${connectionId}' was not found or is not shared with this pipeline. Pick a Kubernetes service connection.`,
    );
  }
  const auth = (key: string) => tl.getEndpointAuthorizationParameter(connectionId, key, true) || undefined;
  const data = (key: string) => tl.getEndpointDataParameter(connectionId, key, true) || undefined;
  const kubeconfig = readSecretQuietly(() => auth('kubeconfig'), registerKubeconfigSecrets);
  const type = (data('authorizationType') ?? (kubeconfig ? 'Kubeconfig' : 'ServiceAccount')).toLowerCase();
  const skipTlsVerify = /^true$/i.test(data('acceptUntrustedCerts') ?? 'false');

  if (type === 'kubeconfig') {
    if (!kubeconfig)
      throw new InputError(
        inputName,
        `service connection '${connectionId}' has no kubeconfig. Edit it and paste the kubeconfig.`,
      );
    return { id: connectionId, kind: 'kubeconfig', kubeconfig, context: data('clusterContext'), skipTlsVerify };
  }
  // ServiceAccount, and AzureSubscription connections, which store a service account token too.
  const server = tl.getEndpointUrl(connectionId, true);
  const rawToken = readSecretQuietly(() => auth('apiToken'));
  if (!server || !rawToken) {
    throw new InputError(
      inputName,
      `service connection '${connectionId}' (${type}) has no server URL or service account token. Edit the service connection, or use an Azure Resource Manager connection with the cluster's name instead.`,
    );
  }
  const token = registerSecret(decodeToken(rawToken));
  return {
    id: connectionId,
    kind: 'serviceAccount',
    server,
    token,
    caData: auth('serviceAccountCertificate'),
    skipTlsVerify,
  };
}
