// `npm start`: the guide's whole flow on this machine, with no cloud account.
//   1. Azurite stands in for the model store; PublishModel publishes the sample model.
//   2. FetchModel pulls the newest version, verified.
//   3. BakeModelImage puts the sample app and the model onto a Node runtime base, with no daemon:
//      into a local registry (Debian's docker-registry) when installed, else into an OCI layout.
//   4. DeployToAKS rolls the digest out to the cluster KUBECONFIG names; without one, the image is
//      served here (podman where it runs, else its unpacked layers with this machine's node) and
//      DeployToAKS deploys it to the embedded Kubernetes API test server, smoke-testing through it.
//   5. A scoring request goes to the served image; its answer is printed with the model version
//      and image digest it came from.
// Each task runs as the agent runs it (bundled index.js, INPUT_*/ENDPOINT_* variables), and output
// variables are chained the way a pipeline chains them. Everything started is stopped on success,
// failure or Ctrl-C. What can be reused (Azurite's blobs, the registry's blobs, the fetched model,
// the staged app, the base image) is kept under .tmp/demo, so a second run is faster.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BlobServiceClient } from '@azure/storage-blob';

import { type AzuriteServer, startAzurite } from '../support/azurite';
import { makeBaseImage, writeBaseLayout } from '../support/images';
import { startKubeTestServer } from '../support/kube/index';
import { buildNodeRuntimeRootfsTar } from '../support/nodeRuntimeBase';
import { repoRoot } from '../support/paths';
import { freePort, isPortFree } from '../support/ports';
import { startRegistry, type TestRegistry } from '../support/registry';
import { type ImageLocation, type ServedImage, serveImage } from '../support/serveImage';
import { describeRun, runTask, type RunTaskOptions, type TaskRun } from '../support/taskRunner';
import { stageSampleApp } from './serving';

// MODEL_DELIVERY_DEMO_DIR puts the cache elsewhere (the end-to-end test uses a fresh one).
const work = path.resolve(process.env.MODEL_DELIVERY_DEMO_DIR ?? path.join(repoRoot, '.tmp', 'demo'));
const sampleModelDir = path.join(repoRoot, 'sample-app', 'models', 'sample-classifier');
// --no-registry bakes from and into OCI layout folders even where docker-registry is installed;
// --no-podman serves the unpacked layers even where podman runs. Both are what a machine without
// those tools gets anyway.
const useRegistry = !process.argv.includes('--no-registry');
const usePodman = !process.argv.includes('--no-podman');
const started = Date.now();
const cleanups: Array<() => Promise<void> | void> = [];

const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (text: string) => console.log(text);
function step(n: number, title: string): void {
  say(`\n[${n}/5] ${title}  (${elapsed()})`);
}

async function cleanUp(): Promise<void> {
  while (cleanups.length) {
    try {
      await cleanups.pop()!();
    } catch (err) {
      console.error(`cleanup: ${(err as Error).message}`);
    }
  }
}

/** Runs a bundled task as the agent does, echoing its log lines; fails the demo when the task fails. */
async function task(name: string, opts: RunTaskOptions): Promise<TaskRun> {
  const run = await runTask(name, {
    ...opts,
    timeoutMs: 600_000,
    onLine: (line) => {
      if (!line.startsWith('##vso[')) say(`      ${line}`);
    },
  });
  if (run.result !== 'Succeeded') throw new Error(`${name} failed: ${describeRun(run)}`);
  say(`    ${name} succeeded in ${(run.durationMs / 1000).toFixed(1)} s`);
  return run;
}

/**
 * The port a service had in the last run, when it is still free. Addresses end up in what is
 * baked (the model's source URI, the base image's name), so stable ports let the same inputs
 * give the same digest, and let FetchModel's cache recognise the same blob, run after run.
 */
async function stablePort(service: string): Promise<number> {
  const file = path.join(work, `${service}.port`);
  const last = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : undefined;
  // A previous run's process may still be letting go of it: give it a few seconds.
  let free = false;
  for (let i = 0; last && !free && i < 20; i++) {
    free = await isPortFree(last);
    if (!free) await new Promise((r) => setTimeout(r, 250));
  }
  const port = free && last ? last : await freePort();
  if (last && port !== last)
    say(`    (${service}'s port ${last} is taken: using ${port}; names that include it will differ from the last run)`);
  fs.writeFileSync(file, String(port));
  return port;
}

function which(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

async function publishAndFetch(azurite: AzuriteServer, connectionString: string) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(sampleModelDir, 'model.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const storage = {
    authenticationType: 'connectionString',
    connectionString: '$(modelStoreConnection)',
    container: 'models',
    blobEndpoint: azurite.blobEndpoint,
  };
  const secretVariables = { modelStoreConnection: connectionString };

  step(1, `PublishModel: ${modelJson.name} ${modelJson.version} to Azurite (${azurite.blobEndpoint})`);
  // The model store's container is made once by whoever owns the storage account, as in Azure.
  await BlobServiceClient.fromConnectionString(connectionString).getContainerClient('models').createIfNotExists();
  const publish = await runTask('PublishModel', {
    inputs: {
      destination: 'azureBlob',
      ...storage,
      connectionString,
      modelPath: sampleModelDir,
      modelName: modelJson.name,
      modelVersion: modelJson.version,
      tags: 'stage=production',
    },
    secretVariables,
  });
  if (publish.result === 'Succeeded') say(`    published ${publish.outputs.ModelUri}`);
  else if (/already published/.test(publish.message))
    say(
      `    ${modelJson.name} ${modelJson.version} is already published (published versions are immutable): reusing it`,
    );
  else throw new Error(`PublishModel failed: ${describeRun(publish)}`);

  step(2, 'FetchModel: the highest published version, verified by SHA-256');
  const fetched = await task('FetchModel', {
    inputs: {
      source: 'azureBlob',
      ...storage,
      connectionString,
      modelPath: `${modelJson.name}/`,
      versionSelector: 'semver',
      targetPath: path.join(work, 'model'),
    },
    secretVariables,
  });
  return fetched.outputs;
}

interface Baked {
  imageRef: string;
  digest: string;
  registry?: TestRegistry;
  layout?: string;
}

async function bake(model: Record<string, string>): Promise<Baked> {
  step(3, 'BakeModelImage: sample app + model onto a Node runtime base, no Docker daemon');
  const appDir = await stageSampleApp(path.join(work, 'app'), say);
  const baseTar = path.join(work, 'base', 'node-runtime.tar');
  if (!fs.existsSync(baseTar)) {
    say('    building the Node runtime base from this machine’s node binary and the libraries ldd lists');
    fs.mkdirSync(path.dirname(baseTar), { recursive: true });
    await buildNodeRuntimeRootfsTar(baseTar);
  } else say('    Node runtime base: cached');

  const common = {
    modelPath: model.ModelPath,
    appDirectory: appDir,
    appTargetPath: '/app',
    workingDir: '/app',
    entrypoint: '["/usr/local/bin/node", "/app/dist/main.js"]',
    env: 'PORT=8080\nHOST=0.0.0.0',
    exposedPorts: '8080',
    user: '1000:1000',
    compression: 'gzip',
  };
  const registryUsable =
    useRegistry && fs.existsSync('/usr/bin/docker-registry') && which('skopeo') && which('htpasswd');
  if (!registryUsable) return bakeIntoLayout(model, baseTar, common);
  // The registry's password is made on the first run and kept with its storage, as a real one's would be.
  const passwordFile = path.join(work, 'registry.password');
  if (!fs.existsSync(passwordFile))
    fs.writeFileSync(passwordFile, crypto.randomBytes(16).toString('hex'), { mode: 0o600 });
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  const registry = await startRegistry({
    storageDir: path.join(work, 'registry'),
    username: 'demo',
    password,
    port: await stablePort('registry'),
  });
  cleanups.push(() => registry.stop());
  say(`    local registry on ${registry.host} (htpasswd auth)`);
  const baseRef = `${registry.host}/runtime/node:20`;
  const baseMarker = path.join(work, 'base', 'pushed');
  // The registry's storage survives runs; its port does not, so the marker records content, not the address.
  const baseDigestFile = fs.existsSync(baseMarker) ? fs.readFileSync(baseMarker, 'utf8').trim() : '';
  const tarDigest = crypto.createHash('sha256').update(fs.readFileSync(baseTar)).digest('hex');
  if (baseDigestFile !== tarDigest) {
    say('    pushing the base image with skopeo');
    await makeBaseImage(registry, {
      repository: 'runtime/node',
      tag: '20',
      rootfsTar: baseTar,
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/usr/local/bin/node'] },
    });
    fs.writeFileSync(baseMarker, tarDigest);
  } else say('    base image: already in the registry');

  const run = await task('BakeModelImage', {
    inputs: {
      connectionType: 'dockerRegistry',
      dockerRegistryServiceConnection: 'demo-registry',
      repository: `${registry.host}/ml/sample-scoring`,
      baseImage: baseRef,
      baseRegistryConnection: 'demo-registry',
      tags: `demo\n${model.ModelVersion}`,
      ...common,
    },
    endpoints: [
      {
        id: 'demo-registry',
        url: `http://${registry.host}`,
        scheme: 'UsernamePassword',
        auth: { registry: `http://${registry.host}`, username: registry.username, password: registry.password },
      },
    ],
  });
  say(`    ${run.outputs.ImageRef} (uploaded ${run.outputs.BytesUploaded} bytes, skipped ${run.outputs.BytesSkipped})`);
  return { imageRef: run.outputs.ImageRef, digest: run.outputs.ImageDigest, registry };
}

/**
 * Without a registry (docker-registry, skopeo or htpasswd missing) the base comes from an OCI
 * layout folder and the baked image goes into one: connection type None, nothing pushed.
 */
async function bakeIntoLayout(
  model: Record<string, string>,
  baseTar: string,
  common: Record<string, string>,
): Promise<Baked> {
  say(
    `    ${useRegistry ? 'docker-registry, skopeo or htpasswd is not installed' : '--no-registry'}: baking from and into OCI image layout folders, with no registry`,
  );
  const baseLayout = path.join(work, 'base', 'layout');
  if (!fs.existsSync(path.join(baseLayout, 'index.json'))) {
    await writeBaseLayout(baseLayout, {
      tag: '20',
      rootfsTar: baseTar,
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/usr/local/bin/node'] },
    });
  }
  const layout = path.join(work, 'image-layout');
  fs.rmSync(layout, { recursive: true, force: true });
  const run = await task('BakeModelImage', {
    inputs: {
      connectionType: 'none',
      baseImage: `oci:${baseLayout}:20`,
      outputLayout: layout,
      tags: `demo\n${model.ModelVersion}`,
      ...common,
    },
  });
  say(`    ${run.outputs.ImageRef} (${run.outputs.ImageDigest})`);
  return { imageRef: run.outputs.ImageRef, digest: run.outputs.ImageDigest, layout };
}

async function serveLocally(baked: Baked): Promise<ServedImage> {
  const location: ImageLocation = baked.registry
    ? { registry: baked.registry, ref: baked.imageRef }
    : { layout: baked.layout!, tag: 'demo' };
  const served = await serveImage(location, {
    workDir: work,
    usePodman,
    say,
    env: { OCI_IMAGE_DIGEST: baked.digest, OCI_IMAGE_REF: baked.imageRef },
  });
  cleanups.push(() => served.stop());
  return served;
}

async function deploy(baked: Baked, model: Record<string, string>): Promise<ServedImage> {
  const deployInputs = {
    // A cluster pulls from a registry: an image only in a layout gets a local name for the simulated cluster.
    imageRef: baked.registry ? baked.imageRef : `localhost/ml/sample-scoring@${baked.digest}`,
    name: 'sample-scoring',
    namespace: 'model-delivery-demo',
    createNamespace: true,
    replicas: 1,
    containerPort: 8080,
    serviceType: 'ClusterIP',
    modelName: model.ModelName,
    modelVersion: model.ModelVersion,
    modelSha256: model.ModelSha256,
    smokeTest: true,
    smokeTestRoute: 'apiServerProxy',
    smokeTestPayload: JSON.stringify(sampleRequest().body),
    rolloutTimeoutSeconds: 120,
  };
  if (process.env.KUBECONFIG) {
    step(4, `DeployToAKS: to the cluster KUBECONFIG names (${process.env.KUBECONFIG})`);
    const kubeconfig = fs.readFileSync(process.env.KUBECONFIG, 'utf8');
    const run = await task('DeployToAKS', {
      inputs: {
        connectionType: 'kubernetesServiceConnection',
        kubernetesServiceConnection: 'demo-cluster',
        ...deployInputs,
      },
      endpoints: [
        { id: 'demo-cluster', scheme: 'Kubernetes', auth: { kubeconfig }, data: { authorizationType: 'Kubeconfig' } },
      ],
    });
    say(`    ${run.outputs.DeployedImage} at ${run.outputs.ServiceEndpoint || '(no external endpoint)'}`);
    say('    note: the cluster must be able to pull from the registry the image was pushed to');
  }
  step(
    4,
    process.env.KUBECONFIG
      ? 'serving the baked image locally as well, to score it'
      : 'KUBECONFIG is not set: serving the baked image locally, and deploying it to the embedded Kubernetes API test server',
  );
  const served = await serveLocally(baked);
  say(`    serving at ${served.url} from ${served.how}`);
  if (!process.env.KUBECONFIG) {
    const kube = await startKubeTestServer({ tickMs: 50 });
    cleanups.push(() => kube.stop());
    kube.setServiceBackend('model-delivery-demo', 'sample-scoring', served.url);
    const run = await task('DeployToAKS', {
      inputs: {
        connectionType: 'kubernetesServiceConnection',
        kubernetesServiceConnection: 'demo-cluster',
        ...deployInputs,
      },
      endpoints: [
        {
          id: 'demo-cluster',
          scheme: 'Kubernetes',
          auth: { kubeconfig: kube.kubeconfig },
          data: { authorizationType: 'Kubeconfig' },
        },
      ],
    });
    say(
      `    revision ${run.outputs.Revision}: ${run.outputs.DeployedImage}; smoke test went through the API server's service proxy to the served image`,
    );
  }
  return served;
}

function sampleRequest(): { body: unknown; expected?: unknown } {
  const samples = JSON.parse(fs.readFileSync(path.join(sampleModelDir, 'samples.json'), 'utf8')) as {
    requests: Array<{ body: unknown; expected?: unknown }>;
  };
  return samples.requests[0];
}

async function score(served: ServedImage, baked: Baked): Promise<void> {
  step(5, `scoring request to ${served.url}/score`);
  const request = sampleRequest();
  const res = await fetch(`${served.url}/score`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request.body),
  });
  const answer = (await res.json()) as { outputs: Record<string, unknown>; model: { name: string; version: string } };
  if (!res.ok) throw new Error(`scoring answered ${res.status}: ${JSON.stringify(answer)}`);
  const info = (await (await fetch(`${served.url}/model`)).json()) as { sha256?: string };
  say(`    request:  ${JSON.stringify(request.body)}`);
  say(`    answer:   ${JSON.stringify(answer.outputs)}`);
  say(`    model:    ${answer.model.name} ${answer.model.version} (sha256 ${info.sha256 ?? '?'})`);
  say(`    image:    ${baked.imageRef}`);
  say(`\nDone in ${elapsed()}. A second run reuses what is cached under ${path.relative(repoRoot, work) || work}/.`);
  // The last line, for scripts and CI: one JSON object with what was scored.
  console.log(
    `DEMO_RESULT ${JSON.stringify({ outputs: answer.outputs, model: answer.model, imageRef: baked.imageRef, digest: baked.digest, seconds: (Date.now() - started) / 1000 })}`,
  );
}

async function main(): Promise<void> {
  fs.mkdirSync(work, { recursive: true });
  say(`Model Delivery for Azure Pipelines: the whole flow, locally (work folder ${path.relative(repoRoot, work)})`);
  const azurite = await startAzurite({ location: path.join(work, 'azurite'), port: await stablePort('azurite') });
  cleanups.push(() => azurite.stop());
  const model = await publishAndFetch(azurite, azurite.connectionString);
  const baked = await bake(model);
  const served = await deploy(baked, model);
  await score(served, baked);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`\n${signal}: stopping what the demo started`);
    void cleanUp().then(() => process.exit(130));
  });
}

main()
  .then(cleanUp)
  .catch(async (err) => {
    console.error(`\nThe demo failed: ${(err as Error).message}`);
    await cleanUp();
    process.exit(1);
  });
