// Runs a baked scoring image on this machine: with podman where it can run containers, else from
// the image's unpacked layers with this machine's node. Used by the demo and by the bake tests.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { credsOf, readLayoutImage, skopeoCopyToLayout, unpackLayers } from './images';
import { PODMAN_GLOBAL_ARGS, PODMAN_RUN_ARGS, podmanUnusableReason } from './nodeRuntimeBase';
import { freePort } from './ports';
import type { TestRegistry } from './registry';

/** Where the image is: pushed to a registry, or written to an OCI layout folder under a tag. */
export type ImageLocation = { registry: TestRegistry; ref: string } | { layout: string; tag: string };

export interface ServedImage {
  url: string;
  via: 'podman' | 'unpacked';
  /** Said for people: which container, or which folder and node binary. */
  how: string;
  stop(): Promise<void>;
}

export interface ServeOptions {
  /** Extra environment for the app (PORT and HOST are set here). */
  env?: Record<string, string>;
  /** Folder for the unpacked layers when podman is not used. */
  workDir: string;
  /** False: serve the unpacked layers even where podman runs. */
  usePodman?: boolean;
  say?: (line: string) => void;
}

interface ImageConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
}

export async function waitForReady(
  url: string,
  logs: () => string,
  alive: () => boolean,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive()) throw new Error(`the scoring service stopped before it was ready:\n${logs().slice(-3000)}`);
    if (
      (await fetch(`${url}/readyz`).then(
        (r) => r.status,
        () => 0,
      )) === 200
    )
      return;
    if (Date.now() > deadline)
      throw new Error(
        `the scoring service at ${url} did not get ready within ${timeoutMs / 1000} s:\n${logs().slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function serveImage(image: ImageLocation, opts: ServeOptions): Promise<ServedImage> {
  const say = opts.say ?? (() => {});
  const port = await freePort();
  const env = { ...opts.env, PORT: String(port), HOST: '127.0.0.1' };
  const reason = opts.usePodman === false ? 'not asked to' : await podmanUnusableReason();
  if (!reason) {
    const served = await serveWithPodman(image, port, env, say);
    if (served) return served;
  } else say(`    podman is not used (${reason}): serving the image's unpacked layers with this machine's node`);
  return serveUnpacked(image, port, env, opts.workDir);
}

async function serveWithPodman(
  image: ImageLocation,
  port: number,
  env: Record<string, string>,
  say: (line: string) => void,
): Promise<ServedImage | undefined> {
  const podman = (...args: string[]) => spawnSync('podman', [...PODMAN_GLOBAL_ARGS, ...args], { encoding: 'utf8' });
  const name = `model-delivery-${process.pid}-${port}`;
  const undo: Array<() => void> = [];
  const stop = async () =>
    undo
      .splice(0)
      .reverse()
      .forEach((f) => f());
  let source: string;
  let pullArgs: string[] = [];
  if ('registry' in image) {
    source = image.ref;
    pullArgs = ['--tls-verify=false', ...credsOf(image.registry)];
  } else {
    // podman names an image pulled from a layout after the folder's path, which must then be
    // lower case: pull through a lower-case link.
    const link = path.join(os.tmpdir(), `model-delivery-layout-${process.pid}-${port}`);
    fs.rmSync(link, { force: true });
    fs.symlinkSync(image.layout, link);
    undo.push(() => fs.rmSync(link, { force: true }));
    source = `oci:${link}:${image.tag}`;
  }
  say(`    podman: pulling ${source}`);
  const pull = podman('pull', '--quiet', ...pullArgs, source);
  const imageId = pull.stdout.trim().split('\n').pop();
  if (pull.status !== 0 || !imageId) {
    say(`    podman pull failed (${pull.stderr.trim().split('\n').pop()}): serving the unpacked layers instead`);
    await stop();
    return undefined;
  }
  // Podman's vfs storage holds a full copy of every image: the pulled one goes when serving stops.
  undo.push(() => void podman('rmi', '--force', imageId));
  const run = podman(
    'run',
    '--detach',
    '--name',
    name,
    ...PODMAN_RUN_ARGS,
    '--network',
    'host',
    ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    imageId,
  );
  if (run.status !== 0) {
    say(`    podman run failed (${run.stderr.trim().split('\n').pop()}): serving the unpacked layers instead`);
    await stop();
    return undefined;
  }
  undo.push(() => void podman('rm', '--force', '--time', '5', name));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForReady(
      url,
      () => podman('logs', name).stdout + podman('logs', name).stderr,
      () => podman('inspect', '--format', '{{.State.Running}}', name).stdout.trim() === 'true',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, via: 'podman', how: `podman container ${name}`, stop };
}

/** Unpacks the image's layers in order (read from its layout, or copied out by skopeo) and runs its entrypoint with this node. */
async function serveUnpacked(
  image: ImageLocation,
  port: number,
  env: Record<string, string>,
  workDir: string,
): Promise<ServedImage> {
  const rootfs = path.join(workDir, 'rootfs');
  fs.rmSync(rootfs, { recursive: true, force: true });
  let layout: string;
  let tag: string;
  let copied: string | undefined;
  if ('registry' in image) {
    copied = layout = path.join(workDir, 'served-layout');
    tag = 'served';
    fs.rmSync(copied, { recursive: true, force: true });
    await skopeoCopyToLayout(image.registry, image.ref, copied, tag);
  } else ({ layout, tag } = image);
  const read = readLayoutImage(layout, tag);
  await unpackLayers(
    read.manifest.layers.map((l: { digest: string }) => read.blob(l.digest)),
    rootfs,
  );
  if (copied) fs.rmSync(copied, { recursive: true, force: true });

  const config = read.config.config as ImageConfig;
  const imageEnv = Object.fromEntries(
    (config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  );
  // The entrypoint's node is this machine's; absolute paths in its arguments point into the rootfs.
  const command = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])]
    .slice(1)
    .map((arg) => (arg.startsWith('/') ? path.join(rootfs, arg) : arg));
  const child = spawn(process.execPath, command, {
    cwd: path.join(rootfs, config.WorkingDir ?? '/'),
    env: {
      PATH: process.env.PATH ?? '',
      ...imageEnv,
      ...(imageEnv.MODEL_PATH ? { MODEL_PATH: path.join(rootfs, imageEnv.MODEL_PATH) } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout.on('data', (c) => (logs += c));
  child.stderr.on('data', (c) => (logs += c));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForReady(
      url,
      () => logs,
      () => child.exitCode === null,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, via: 'unpacked', how: `the image's layers unpacked in ${rootfs}, run by ${process.execPath}`, stop };
}
