import * as tl from 'azure-pipelines-task-lib/task';

import { InputError } from '../common/errors';
import {
  booleanInput,
  connectionInput,
  enumInput,
  integerInput,
  listInput,
  mapInput,
  optionalString,
  requiredString,
  secretString,
} from '../common/inputs';
import { type ImageReference, InvalidReferenceError, parseReference } from '../common/oci/reference';
import type { SmokeTestSpec } from './smokeTest';

export type Action = 'deploy' | 'promote' | 'reject';
export type ConnectionType = 'azureResourceManager' | 'kubernetesServiceConnection';
export type ManifestSource = 'builtIn' | 'files';
export type Strategy = 'rolling' | 'canary';
export type ServiceType = 'LoadBalancer' | 'ClusterIP';
export type SmokeTestRoute = 'auto' | 'loadBalancer' | 'apiServerProxy';

export type ClusterParameters =
  | {
      type: 'azureResourceManager';
      connectionInput: 'azureSubscription';
      connectionId: string;
      resourceGroup: string;
      clusterName: string;
      useAdminCredentials: boolean;
    }
  | { type: 'kubernetesServiceConnection'; connectionInput: 'kubernetesServiceConnection'; connectionId: string };

export interface ResourceSettings {
  requests: { cpu?: string; memory?: string };
  limits: { cpu?: string; memory?: string };
}

export interface BuiltInSettings {
  replicas: number;
  containerPort: number;
  servicePort: number;
  serviceType: ServiceType;
  resources: ResourceSettings;
  env: Record<string, string>;
  livenessPath?: string;
  readinessPath?: string;
  autoscale?: { minReplicas: number; maxReplicas: number; targetCpuUtilization: number };
  podDisruptionBudget?: { minAvailable: string | number };
  serviceAnnotations: Record<string, string>;
  podAnnotations: Record<string, string>;
}

export interface ModelFacts {
  name?: string;
  version?: string;
  sha256?: string;
}

export interface SmokeTestParameters extends SmokeTestSpec {
  route: SmokeTestRoute;
}

export interface DeployToAKSParameters {
  action: Action;
  cluster: ClusterParameters;
  namespace: string;
  createNamespace: boolean;
  /** Absent only for promote and reject, which take the image from the canary. */
  image?: { text: string; ref: ImageReference };
  name?: string;
  manifestSource: ManifestSource;
  builtIn: BuiltInSettings;
  /** Patterns (globs) of the user's manifest files, resolved from `workingDirectory`. */
  manifestPatterns: string[];
  workingDirectory: string;
  manifestVariables: Record<string, string>;
  /** Pipeline variables for $(name) tokens that `manifestVariables` does not give. */
  lookupVariable: (name: string) => string | undefined;
  imageRepositoryInManifests?: string;
  strategy: Strategy;
  canaryPercentage: number;
  imagePullSecret?: { connectionId: string; name: string };
  model: ModelFacts;
  rolloutTimeoutSeconds: number;
  progressDeadlineSeconds: number;
  rollbackOnFailure: boolean;
  failOnPodErrors: boolean;
  fieldManager: string;
  forceConflicts: boolean;
  smokeTest?: SmokeTestParameters;
  run: { url?: string; pipeline?: string; buildNumber?: string };
}

/** An input whose default is a macro such as $(ModelName) arrives verbatim when no earlier step set it: treat that as not given. */
function optionalMacroString(name: string): string | undefined {
  const value = optionalString(name);
  return value === undefined || /^\$\([^)]+\)$/.test(value) ? undefined : value;
}

const QUANTITY = /^(\d+(\.\d+)?|\.\d+)(m|k|Ki|M|Mi|G|Gi|T|Ti|E|Ei|P|Pi)?$/;

function quantity(name: string): string | undefined {
  const value = optionalString(name);
  if (value !== undefined && !QUANTITY.test(value))
    throw new InputError(
      name,
      `'${value}' is not a Kubernetes quantity. Write e.g. 250m or 0.5 for CPU, 512Mi or 1Gi for memory.`,
    );
  return value;
}

function httpPath(name: string, fallback: string): string {
  const value = optionalString(name) ?? fallback;
  if (!value.startsWith('/'))
    throw new InputError(name, `'${value}' must be a path starting with /, e.g. ${fallback}.`);
  return value;
}

function imageInput(required: boolean): { text: string; ref: ImageReference } | undefined {
  const text = required ? requiredString('imageRef') : optionalMacroString('imageRef');
  if (text === undefined || /^\$\([^)]+\)$/.test(text)) {
    if (required)
      throw InputError.required(
        'imageRef',
        'Give the image to deploy, e.g. the ImageRef output of BakeModelImage: $(bake.ImageRef).',
      );
    return undefined;
  }
  try {
    return { text, ref: parseReference(text) };
  } catch (err) {
    if (err instanceof InvalidReferenceError)
      throw new InputError(
        'imageRef',
        `${err.problem} Give registry/repository@sha256:<digest>, such as BakeModelImage's ImageRef output.`,
      );
    throw err;
  }
}

function minAvailable(): string | number | undefined {
  const value = optionalString('pdbMinAvailable');
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  if (/^\d{1,3}%$/.test(value) && Number(value.slice(0, -1)) <= 100) return value;
  throw new InputError(
    'pdbMinAvailable',
    `'${value}' is neither a number of pods nor a percentage. Write e.g. 1 or 50%.`,
  );
}

function expectedOutput(): unknown {
  const text = optionalString('smokeTestExpected');
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(
      'smokeTestExpected',
      `is not valid JSON (${(err as Error).message}). Give the JSON the /score answer must contain, e.g. {"label":[2]}.`,
    );
  }
}

function smokePayload(): string | undefined {
  const text = optionalString('smokeTestPayload');
  if (text === undefined) return undefined;
  try {
    JSON.parse(text);
  } catch (err) {
    throw new InputError(
      'smokeTestPayload',
      `is not valid JSON (${(err as Error).message}). Give the request body for /score, e.g. {"data": [[5.1, 3.5, 1.4, 0.2]]}.`,
    );
  }
  return text;
}

function tolerance(): number {
  const text = optionalString('smokeTestTolerance') ?? '0.00001';
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0)
    throw new InputError('smokeTestTolerance', `'${text}' is not a non-negative number. Write e.g. 0.00001.`);
  return value;
}

const KUBE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function kubeName(name: string, value: string | undefined, max: number): string | undefined {
  if (value !== undefined && (!KUBE_NAME.test(value) || value.length > max)) {
    throw new InputError(
      name,
      `'${value}' is not a valid Kubernetes name: use at most ${max} lowercase letters, digits and '-', starting and ending with a letter or digit.`,
    );
  }
  return value;
}

function runFacts(): DeployToAKSParameters['run'] {
  const collection = tl.getVariable('System.TeamFoundationCollectionUri');
  const project = tl.getVariable('System.TeamProject');
  const buildId = tl.getVariable('Build.BuildId');
  const releaseUrl = tl.getVariable('Release.ReleaseWebUrl');
  const url =
    releaseUrl ??
    (collection && project && buildId
      ? `${collection.replace(/\/+$/, '')}/${encodeURIComponent(project)}/_build/results?buildId=${buildId}`
      : undefined);
  return {
    url,
    pipeline: tl.getVariable('Release.DefinitionName') ?? tl.getVariable('Build.DefinitionName'),
    buildNumber: tl.getVariable('Release.ReleaseName') ?? tl.getVariable('Build.BuildNumber'),
  };
}

export function readParameters(): DeployToAKSParameters {
  const action = enumInput<Action>('action', ['deploy', 'promote', 'reject'], 'deploy');
  const connectionType = enumInput<ConnectionType>(
    'connectionType',
    ['azureResourceManager', 'kubernetesServiceConnection'],
    'azureResourceManager',
  );
  const cluster: ClusterParameters =
    connectionType === 'azureResourceManager'
      ? {
          type: connectionType,
          connectionInput: 'azureSubscription',
          connectionId: connectionInput('azureSubscription')!,
          resourceGroup: requiredString('resourceGroup'),
          clusterName: requiredString('clusterName'),
          useAdminCredentials: booleanInput('useClusterAdmin', false),
        }
      : {
          type: connectionType,
          connectionInput: 'kubernetesServiceConnection',
          connectionId: connectionInput('kubernetesServiceConnection')!,
        };
  const namespace = kubeName('namespace', optionalString('namespace') ?? 'default', 63)!;
  const manifestSource = enumInput<ManifestSource>('manifestSource', ['builtIn', 'files'], 'builtIn');
  const image = imageInput(action === 'deploy');
  const name = kubeName(
    'name',
    manifestSource === 'builtIn' || action !== 'deploy' ? requiredString('name') : optionalString('name'),
    47,
  );
  const manifestPatterns = manifestSource === 'files' ? listInput('manifests', { separators: /[\r\n]+/ }) : [];
  if (manifestSource === 'files' && action === 'deploy' && manifestPatterns.length === 0) {
    throw InputError.required(
      'manifests',
      'Give the manifest files to deploy, one path or glob a line, e.g. k8s/*.yaml.',
    );
  }
  const autoscale = booleanInput('autoscale', false);
  const replicas = integerInput('replicas', { min: 0, max: 1000, fallback: 2 });
  const smokeTest = booleanInput('smokeTest', false);
  const pullSecretConnection = connectionInput('imagePullSecretConnection', false);
  const rolloutTimeoutSeconds = integerInput('rolloutTimeoutSeconds', { min: 10, max: 6 * 3600, fallback: 600 });
  return {
    action,
    cluster,
    namespace,
    createNamespace: booleanInput('createNamespace', false),
    image,
    name,
    manifestSource,
    builtIn: {
      replicas,
      containerPort: integerInput('containerPort', { min: 1, max: 65535, fallback: 8080 }),
      servicePort: integerInput('servicePort', { min: 1, max: 65535, fallback: 80 }),
      serviceType: enumInput<ServiceType>('serviceType', ['LoadBalancer', 'ClusterIP'], 'LoadBalancer'),
      resources: {
        requests: { cpu: quantity('cpuRequest'), memory: quantity('memoryRequest') },
        limits: { cpu: quantity('cpuLimit'), memory: quantity('memoryLimit') },
      },
      env: mapInput('env', { keyPattern: /^[A-Za-z_][A-Za-z0-9_.-]*$/, keyHint: 'an environment variable name' }),
      livenessPath: optionalString('livenessPath') === '-' ? undefined : httpPath('livenessPath', '/healthz'),
      readinessPath: optionalString('readinessPath') === '-' ? undefined : httpPath('readinessPath', '/readyz'),
      autoscale: autoscale
        ? {
            minReplicas: integerInput('minReplicas', { min: 1, max: 1000, fallback: Math.max(1, replicas) }),
            maxReplicas: integerInput('maxReplicas', { min: 1, max: 1000, fallback: Math.max(2, replicas * 3) }),
            targetCpuUtilization: integerInput('targetCpuUtilization', { min: 1, max: 100, fallback: 70 }),
          }
        : undefined,
      podDisruptionBudget: ((m) => (m === undefined ? undefined : { minAvailable: m }))(minAvailable()),
      serviceAnnotations: mapInput('serviceAnnotations'),
      podAnnotations: mapInput('podAnnotations'),
    },
    manifestPatterns,
    workingDirectory: tl.getVariable('System.DefaultWorkingDirectory') ?? process.cwd(),
    manifestVariables: mapInput('manifestVariables'),
    lookupVariable: (variable) => tl.getVariable(variable),
    imageRepositoryInManifests: optionalString('imageRepositoryInManifests'),
    strategy: enumInput<Strategy>('strategy', ['rolling', 'canary'], 'rolling'),
    canaryPercentage: integerInput('canaryPercentage', { min: 1, max: 99, fallback: 10 }),
    imagePullSecret: pullSecretConnection
      ? {
          connectionId: pullSecretConnection,
          name:
            kubeName('imagePullSecretName', optionalString('imagePullSecretName'), 253) ??
            `${name ?? 'model'}-registry`,
        }
      : undefined,
    model: {
      name: optionalMacroString('modelName'),
      version: optionalMacroString('modelVersion'),
      sha256: optionalMacroString('modelSha256'),
    },
    rolloutTimeoutSeconds,
    progressDeadlineSeconds: integerInput('progressDeadlineSeconds', {
      min: 5,
      max: 6 * 3600,
      fallback: Math.min(600, rolloutTimeoutSeconds),
    }),
    rollbackOnFailure: booleanInput('rollbackOnFailure', true),
    failOnPodErrors: booleanInput('failOnPodErrors', true),
    fieldManager: optionalString('fieldManager') ?? 'model-delivery',
    forceConflicts: booleanInput('forceConflicts', false),
    smokeTest: smokeTest
      ? {
          route: enumInput<SmokeTestRoute>('smokeTestRoute', ['auto', 'loadBalancer', 'apiServerProxy'], 'auto'),
          readyPath: httpPath('smokeTestReadyPath', '/readyz'),
          scorePath: httpPath('smokeTestScorePath', '/score'),
          payload: smokePayload(),
          expected: expectedOutput(),
          tolerance: tolerance(),
          apiKey: secretString('smokeTestApiKey'),
        }
      : undefined,
    run: runFacts(),
  };
}
