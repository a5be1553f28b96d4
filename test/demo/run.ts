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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { credsOf, makeBaseImage, writeBaseLayout } from '../support/images';
import { startKubeTestServer } from '../support/kube/index';
import { buildNodeRuntimeRootfsTar, podmanUnusableReason, PODMAN_GLOBAL_ARGS, PODMAN_RUN_ARGS } from '../support/nodeRuntimeBase';
import { freePort, isPortFree } from '../support/ports';
import { repoRoot } from '../support/paths';
import { startRegistry, type TestRegistry } from '../support/registry';
import { describeRun, runTask, type RunTaskOptions, type TaskRun } from '../support/taskRunner';
import { stageSampleApp, unpackImage } from './serving';

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
  if (last && port !== last) say(`    (${service}'s port ${last} is taken: using ${port}; names that include it will differ from the last run)`);
  fs.writeFileSync(file, String(port));
  return port;
}

function which(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

async function publishAndFetch(azurite: AzuriteServer, connectionString: string) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(sampleModelDir, 'model.json'), 'utf8')) as { name: string; version: string };
  const storage = { authenticationType: 'connectionString', connectionString: '$(modelStoreConnection)', container: 'models', blobEndpoint: azurite.blobEndpoint };
  const secretVariables = { modelStoreConnection: connectionString };

  step(1, `PublishModel: ${modelJson.name} ${modelJson.version} to Azurite (${azurite.blobEndpoint})`);
  // The model store's container is made once by whoever owns the storage account, as in Azure.
  await BlobServiceClient.fromConnectionString(connectionString).getContainerClient('models').createIfNotExists();
  const publish = await runTask('PublishModel', {
    inputs: { destination: 'azureBlob', ...storage, connectionString, modelPath: sampleModelDir, modelName: modelJson.name, modelVersion: modelJson.version, tags: 'stage=production' },
    secretVariables,
  });
  if (publish.result === 'Succeeded') say(`    published ${publish.outputs.ModelUri}`);
  else if (/already published/.test(publish.message)) say(`    ${modelJson.name} ${modelJson.version} is already published (published versions are immutable): reusing it`);
  else throw new Error(`PublishModel failed: ${describeRun(publish)}`);

  step(2, 'FetchModel: the highest published version, verified by SHA-256');
  const fetched = await task('FetchModel', {
    inputs: { source: 'azureBlob', ...storage, connectionString, modelPath: `${modelJson.name}/`, versionSelector: 'semver', targetPath: path.join(work, 'model') },
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
  const registryUsable = useRegistry && fs.existsSync('/usr/bin/docker-registry') && which('skopeo') && which('htpasswd');
  if (!registryUsable) return bakeIntoLayout(model, baseTar, common);
  // The registry's password is made on the first run and kept with its storage, as a real one's would be.
  const passwordFile = path.join(work, 'registry.password');
  if (!fs.existsSync(passwordFile)) fs.writeFileSync(passwordFile, crypto.randomBytes(16).toString('hex'), { mode: 0o600 });
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  const registry = await startRegistry({ storageDir: path.join(work, 'registry'), username: 'demo', password, port: await stablePort('registry') });
  cleanups.push(() => registry.stop());
  say(`    local registry on ${registry.host} (htpasswd auth)`);
  const baseRef = `${registry.host}/runtime/node:20`;
  const baseMarker = path.join(work, 'base', 'pushed');
  // The registry's storage survives runs; its port does not, so the marker records content, not the address.
  const baseDigestFile = fs.existsSync(baseMarker) ? fs.readFileSync(baseMarker, 'utf8').trim() : '';
  const tarDigest = crypto.createHash('sha256').update(fs.readFileSync(baseTar)).digest('hex');
  if (baseDigestFile !== tarDigest) {
    say('    pushing the base image with skopeo');
    await makeBaseImage(registry, { repository: 'runtime/node', tag: '20', rootfsTar: baseTar, config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/usr/local/bin/node'] } });
    fs.writeFileSync(baseMarker, tarDigest);
  } else say('    base image: already in the registry');

  const run = await task('BakeModelImage', {
    inputs: { connectionType: 'dockerRegistry', dockerRegistryServiceConnection: 'demo-registry', repository: `${registry.host}/ml/sample-scoring`, baseImage: baseRef, baseRegistryConnection: 'demo-registry', tags: `demo\n${model.ModelVersion}`, ...common },
    endpoints: [{ id: 'demo-registry', url: `http://${registry.host}`, scheme: 'UsernamePassword', auth: { registry: `http://${registry.host}`, username: registry.username, password: registry.password } }],
  });
  say(`    ${run.outputs.ImageRef} (uploaded ${run.outputs.BytesUploaded} bytes, skipped ${run.outputs.BytesSkipped})`);
  return { imageRef: run.outputs.ImageRef, digest: run.outputs.ImageDigest, registry };
}

/**
 * Without a registry (docker-registry, skopeo or htpasswd missing) the base comes from an OCI
 * layout folder and the baked image goes into one: connection type None, nothing pushed.
 */
async function bakeIntoLayout(model: Record<string, string>, baseTar: string, common: Record<string, string>): Promise<Baked> {
  say(`    ${useRegistry ? 'docker-registry, skopeo or htpasswd is not installed' : '--no-registry'}: baking from and into OCI image layout folders, with no registry`);
  const baseLayout = path.join(work, 'base', 'layout');
  if (!fs.existsSync(path.join(baseLayout, 'index.json'))) {
    await writeBaseLayout(baseLayout, { tag: '20', rootfsTar: baseTar, config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/usr/local/bin/node'] } });
  }
  const layout = path.join(work, 'image-layout');
  fs.rmSync(layout, { recursive: true, force: true });
  const run = await task('BakeModelImage', {
    inputs: { connectionType: 'none', baseImage: `oci:${baseLayout}:20`, outputLayout: layout, tags: `demo\n${model.ModelVersion}`, ...common },
  });
  say(`    ${run.outputs.ImageRef} (${run.outputs.ImageDigest})`);
  return { imageRef: run.outputs.ImageRef, digest: run.outputs.ImageDigest, layout };
}

interface Served {
  url: string;
  how: string;
}

async function serveLocally(baked: Baked, model: Record<string, string>): Promise<Served> {
  const port = await freePort();
  const env = { PORT: String(port), HOST: '127.0.0.1', OCI_IMAGE_DIGEST: baked.digest, OCI_IMAGE_REF: baked.imageRef };
  const podmanReason = usePodman ? await podmanUnusableReason() : '--no-podman';
  if (!podmanReason) {
    const name = `model-delivery-demo-${process.pid}`;
    const podman = (...a: string[]) => spawnSync('podman', [...PODMAN_GLOBAL_ARGS, ...a], { encoding: 'utf8' });
    // From the registry the image was pushed to, or from the OCI layout it was written to.
    let source = baked.imageRef;
    if (!baked.registry) {
      // podman names an image pulled from a layout after the folder's path, which must then be
      // lower case: pull through a lower-case link.
      const link = path.join(os.tmpdir(), `model-delivery-demo-layout-${process.pid}`);
      fs.rmSync(link, { force: true });
      fs.symlinkSync(baked.layout!, link);
      cleanups.push(() => fs.rmSync(link, { force: true }));
      source = `oci:${link}:demo`;
    }
    say(`    podman: pulling ${source}`);
    const pull = podman('pull', '--quiet', ...(baked.registry ? ['--tls-verify=false', ...credsOf(baked.registry)] : []), source);
    const imageId = pull.stdout.trim().split('\n').pop();
    // Podman's vfs storage holds a full copy of every image: the pulled one goes with the demo.
    if (pull.status === 0 && imageId) cleanups.push(() => void podman('rmi', '--force', imageId));
    if (pull.status === 0 && imageId) {
      const run = podman('run', '--detach', '--name', name, ...PODMAN_RUN_ARGS, '--network', 'host', ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]), imageId);
      if (run.status === 0) {
        cleanups.push(() => void podman('rm', '--force', '--time', '5', name));
        await waitForReady(
          `http://127.0.0.1:${port}`,
          () => podman('logs', name).stdout + podman('logs', name).stderr,
          () => podman('inspect', '--format', '{{.State.Running}}', name).stdout.trim() === 'true',
        );
        return { url: `http://127.0.0.1:${port}`, how: `podman container ${name}` };
      }
      say(`    podman run failed (${run.stderr.trim().split('\n').pop()}): serving the unpacked layers instead`);
    } else say(`    podman pull failed (${pull.stderr.trim().split('\n').pop()}): serving the unpacked layers instead`);
  } else say(`    podman cannot run containers here (${podmanReason}): serving the image's unpacked layers with this machine's node`);

  const rootfs = path.join(work, 'rootfs');
  const config = await unpackImage(baked, rootfs);
  const imageEnv = Object.fromEntries(config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const entry = config.Entrypoint.slice(1).map((arg) => (arg.startsWith('/') ? path.join(rootfs, arg) : arg));
  const child: ChildProcess = spawn(process.execPath, entry, {
    cwd: path.join(rootfs, config.WorkingDir ?? '/'),
    env: { PATH: process.env.PATH, ...imageEnv, MODEL_PATH: path.join(rootfs, imageEnv.MODEL_PATH ?? model.ModelPath), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout!.on('data', (c) => (logs += c));
  child.stderr!.on('data', (c) => (logs += c));
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
  await waitForReady(`http://127.0.0.1:${port}`, () => logs, () => child.exitCode === null);
  return { url: `http://127.0.0.1:${port}`, how: `the image's layers unpacked in ${path.relative(repoRoot, rootfs)}, run by ${process.execPath}` };
}

async function waitForReady(url: string, logs: () => string, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!alive()) throw new Error(`the scoring service stopped before it was ready:\n${logs().slice(-3000)}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the scoring service at ${url} did not get ready within 60 s:\n${logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function deploy(baked: Baked, model: Record<string, string>): Promise<Served> {
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
      inputs: { connectionType: 'kubernetesServiceConnection', kubernetesServiceConnection: 'demo-cluster', ...deployInputs },
      endpoints: [{ id: 'demo-cluster', scheme: 'Kubernetes', auth: { kubeconfig }, data: { authorizationType: 'Kubeconfig' } }],
    });
    say(`    ${run.outputs.DeployedImage} at ${run.outputs.ServiceEndpoint || '(no external endpoint)'}`);
    say('    note: the cluster must be able to pull from the registry the image was pushed to');
  }
  step(4, process.env.KUBECONFIG ? 'serving the baked image locally as well, to score it' : 'KUBECONFIG is not set: serving the baked image locally, and deploying it to the embedded Kubernetes API test server');
  const served = await serveLocally(baked, model);
  say(`    serving at ${served.url} from ${served.how}`);
  if (!process.env.KUBECONFIG) {
    const kube = await startKubeTestServer({ tickMs: 50 });
    cleanups.push(() => kube.stop());
    kube.setServiceBackend('model-delivery-demo', 'sample-scoring', served.url);
    const run = await task('DeployToAKS', {
      inputs: { connectionType: 'kubernetesServiceConnection', kubernetesServiceConnection: 'demo-cluster', ...deployInputs },
      endpoints: [{ id: 'demo-cluster', scheme: 'Kubernetes', auth: { kubeconfig: kube.kubeconfig }, data: { authorizationType: 'Kubeconfig' } }],
    });
    say(`    revision ${run.outputs.Revision}: ${run.outputs.DeployedImage}; smoke test went through the API server's service proxy to the served image`);
  }
  return served;
}

function sampleRequest(): { body: unknown; expected?: unknown } {
  const samples = JSON.parse(fs.readFileSync(path.join(sampleModelDir, 'samples.json'), 'utf8')) as { requests: Array<{ body: unknown; expected?: unknown }> };
  return samples.requests[0];
}

async function score(served: Served, baked: Baked): Promise<void> {
  step(5, `scoring request to ${served.url}/score`);
  const request = sampleRequest();
  const res = await fetch(`${served.url}/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request.body) });
  const answer = (await res.json()) as { outputs: Record<string, unknown>; model: { name: string; version: string } };
  if (!res.ok) throw new Error(`scoring answered ${res.status}: ${JSON.stringify(answer)}`);
  const info = (await (await fetch(`${served.url}/model`)).json()) as { sha256?: string };
  say(`    request:  ${JSON.stringify(request.body)}`);
  say(`    answer:   ${JSON.stringify(answer.outputs)}`);
  say(`    model:    ${answer.model.name} ${answer.model.version} (sha256 ${info.sha256 ?? '?'})`);
  say(`    image:    ${baked.imageRef}`);
  say(`\nDone in ${elapsed()}. A second run reuses what is cached under ${path.relative(repoRoot, work) || work}/.`);
  // The last line, for scripts and CI: one JSON object with what was scored.
  console.log(`DEMO_RESULT ${JSON.stringify({ outputs: answer.outputs, model: answer.model, imageRef: baked.imageRef, digest: baked.digest, seconds: (Date.now() - started) / 1000 })}`);
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
