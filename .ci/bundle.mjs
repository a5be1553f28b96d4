// Bundles each task into one index.js beside its task.json, in dist/tasks/<Task>/,
// so the .vsix carries no node_modules and each task starts from one file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tasksDir = path.join(root, 'tasks');
const outRoot = path.join(root, 'dist', 'tasks');

export function taskNames() {
  return fs
    .readdirSync(tasksDir)
    .filter((name) => fs.existsSync(path.join(tasksDir, name, 'task.json')))
    .sort();
}

async function bundleTask(name) {
  const src = path.join(tasksDir, name);
  const out = path.join(outRoot, name);
  fs.mkdirSync(out, { recursive: true });
  // Each file is written beside the old one and renamed over it, so a task that is running
  // (a test, the demo) never finds its folder half-written.
  const staged = `.${process.pid}.tmp`;
  const result = await esbuild.build({
    entryPoints: [path.join(src, 'index.ts')],
    outfile: path.join(out, `index.js${staged}`),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
    // Some CommonJS builds still read import.meta.url (e.g. @azure/storage-common's crc64),
    // which esbuild leaves empty in CJS output: give them the bundle's own file URL.
    define: { 'import.meta.url': '__bundleFileUrl' },
    banner: { js: 'var __bundleFileUrl = require("node:url").pathToFileURL(__filename).href;' },
    // Optional native speed-ups some dependencies try to load; they fall back to plain JS.
    external: ['bufferutil', 'utf-8-validate', 'encoding'],
  });
  const sources = {
    'task.json': path.join(src, 'task.json'),
    'icon.png': path.join(src, 'icon.png'),
    'lib.json': path.join(root, 'node_modules', 'azure-pipelines-task-lib', 'lib.json'),
  };
  // (task-lib reads its own messages from lib.json beside the running script.)
  for (const [file, from] of Object.entries(sources)) {
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(out, file + staged));
  }
  const shipped = ['index.js', ...Object.keys(sources)];
  for (const file of shipped) {
    if (fs.existsSync(path.join(out, file + staged)))
      fs.renameSync(path.join(out, file + staged), path.join(out, file));
  }
  // Anything else left from an older build goes, except task-lib's .taskkey, which a running task reads.
  for (const file of fs.readdirSync(out)) {
    if (!shipped.includes(file) && !file.endsWith('.tmp') && file !== '.taskkey')
      fs.rmSync(path.join(out, file), { recursive: true, force: true });
  }
  const bytes = fs.statSync(path.join(out, 'index.js')).size;
  return { name, bytes, inputs: Object.keys(result.metafile.inputs).length };
}

const only = process.argv.slice(2);
const names = taskNames().filter((n) => only.length === 0 || only.includes(n));
const results = await Promise.all(names.map(bundleTask));
for (const r of results) console.log(`bundled ${r.name}: ${(r.bytes / 1024).toFixed(0)} KiB from ${r.inputs} modules`);
