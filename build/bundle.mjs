// Bundles each task into one index.js beside its task.json, in dist/tasks/<Task>/,
// so the .vsix carries no node_modules and each task starts from one file.
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

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
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [path.join(src, 'index.ts')],
    outfile: path.join(out, 'index.js'),
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
  for (const file of ['task.json', 'icon.png']) {
    if (fs.existsSync(path.join(src, file))) fs.copyFileSync(path.join(src, file), path.join(out, file));
  }
  // task-lib reads its own messages from lib.json beside the running script.
  fs.copyFileSync(path.join(root, 'node_modules', 'azure-pipelines-task-lib', 'lib.json'), path.join(out, 'lib.json'));
  const bytes = fs.statSync(path.join(out, 'index.js')).size;
  return { name, bytes, inputs: Object.keys(result.metafile.inputs).length };
}

const only = process.argv.slice(2);
const names = taskNames().filter((n) => only.length === 0 || only.includes(n));
const results = await Promise.all(names.map(bundleTask));
for (const r of results) console.log(`bundled ${r.name}: ${(r.bytes / 1024).toFixed(0)} KiB from ${r.inputs} modules`);
