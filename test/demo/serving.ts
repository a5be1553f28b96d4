// The demo's two local helpers: staging the sample app as it ships (built code and production
// dependencies only), and unpacking a baked image so this machine's node can serve it.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readLayoutImage, skopeoCopyToLayout, unpackLayers } from '../support/images';
import { repoRoot } from '../support/paths';
import type { TestRegistry } from '../support/registry';

const sampleApp = path.join(repoRoot, 'sample-app');

/** A fingerprint of what the staged app is made of: the lockfile and every built file. */
function sampleAppFingerprint(): string {
  const hash = crypto.createHash('sha256');
  hash.update(fs.readFileSync(path.join(sampleApp, 'package-lock.json')));
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else hash.update(`${path.relative(sampleApp, full)}\0`).update(fs.readFileSync(full));
    }
  };
  walk(path.join(sampleApp, 'dist'));
  return hash.digest('hex');
}

/**
 * Copies the built sample app with its production dependencies into `dir` (what a Dockerfile's
 * `npm ci --omit=dev` stage makes), reusing the last copy when nothing changed.
 */
export async function stageSampleApp(dir: string, say: (line: string) => void): Promise<string> {
  if (!fs.existsSync(path.join(sampleApp, 'dist', 'main.js'))) throw new Error('sample-app/dist is missing: run npm run build');
  const fingerprint = sampleAppFingerprint();
  const stamp = path.join(dir, '.staged');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === fingerprint) {
    say('    app directory: cached (sample-app unchanged)');
    return dir;
  }
  say('    staging the sample app: dist/ and production node_modules');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const item of ['package.json', 'package-lock.json', 'dist', 'node_modules']) {
    fs.cpSync(path.join(sampleApp, item), path.join(dir, item), { recursive: true, verbatimSymlinks: true });
  }
  // Offline: prune works from the lockfile and removes what only development needs.
  execFileSync('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--offline'], { cwd: dir, stdio: 'ignore', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  fs.writeFileSync(path.join(dir, '.dockerignore'), '.staged\n');
  fs.writeFileSync(stamp, fingerprint);
  return dir;
}

export interface ImageConfig {
  Env: string[];
  Entrypoint: string[];
  Cmd?: string[];
  WorkingDir?: string;
}

/**
 * Unpacks the image's layers, in order, into `rootfs`: from the OCI layout it was written to, or
 * from the registry it was pushed to (read with skopeo, the independent client).
 */
export async function unpackImage(baked: { imageRef: string; digest: string; registry?: TestRegistry; layout?: string }, rootfs: string): Promise<ImageConfig> {
  fs.rmSync(rootfs, { recursive: true, force: true });
  let layout = baked.layout;
  let copied: string | undefined;
  if (!layout) {
    if (!baked.registry) throw new Error('the image is in neither a registry nor a layout');
    copied = layout = path.join(path.dirname(rootfs), 'layout');
    fs.rmSync(copied, { recursive: true, force: true });
    await skopeoCopyToLayout(baked.registry, baked.imageRef, copied, 'demo');
  }
  const image = readLayoutImage(layout, 'demo');
  await unpackLayers(image.manifest.layers.map((l: { digest: string }) => image.blob(l.digest)), rootfs);
  if (copied) fs.rmSync(copied, { recursive: true, force: true });
  return image.config.config as ImageConfig;
}
