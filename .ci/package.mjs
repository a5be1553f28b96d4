// Packages the bundled tasks into a .vsix with tfx-cli (offline).
// The package is made from a staging folder that holds exactly what ships: the manifest, the
// icon, the Marketplace page, the license and each task's task.json, icon.png, index.js and
// lib.json (never a .taskkey or node_modules).
// Any org can publish a private copy: --publisher, --extension-id and --overrides-file
// (a JSON merged over vss-extension.json, as tfx does) change the identity at package time;
// VSIX_PUBLISHER / VSIX_EXTENSION_ID do the same from the environment.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    publisher: { type: 'string', default: process.env.VSIX_PUBLISHER },
    'extension-id': { type: 'string', default: process.env.VSIX_EXTENSION_ID },
    'overrides-file': { type: 'string' },
    'output-path': { type: 'string', default: path.join(root, 'dist') },
  },
});

const overrides = values['overrides-file'] ? JSON.parse(fs.readFileSync(values['overrides-file'], 'utf8')) : {};
if (values.publisher) overrides.publisher = values.publisher;
if (values['extension-id']) overrides.id = values['extension-id'];

const staging = path.join(root, 'dist', 'vsix');
fs.rmSync(staging, { recursive: true, force: true });
fs.mkdirSync(path.join(staging, 'images'), { recursive: true });
const copy = (from, to) => {
  if (!fs.existsSync(from))
    throw new Error(`${path.relative(root, from)} is missing${from.includes('dist') ? ': run npm run build' : ''}`);
  fs.copyFileSync(from, to);
};
copy(path.join(root, 'vss-extension.json'), path.join(staging, 'vss-extension.json'));
for (const image of ['icon.png', 'flow.png'])
  copy(path.join(root, 'images', image), path.join(staging, 'images', image));
copy(path.join(root, 'docs', 'overview.md'), path.join(staging, 'overview.md'));
copy(path.join(root, 'LICENSE'), path.join(staging, 'LICENSE'));
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'vss-extension.json'), 'utf8'));
for (const contribution of manifest.contributions.filter((c) => c.type === 'ms.vss-distributed-task.task')) {
  const name = contribution.properties.name;
  fs.mkdirSync(path.join(staging, name));
  for (const file of ['task.json', 'icon.png', 'index.js', 'lib.json'])
    copy(path.join(root, 'dist', 'tasks', name, file), path.join(staging, name, file));
}

fs.mkdirSync(values['output-path'], { recursive: true });
const overridesPath = path.join(root, 'dist', 'vsix-overrides.json');
fs.writeFileSync(overridesPath, JSON.stringify(overrides, null, 2));
const tfx = path.join(root, 'node_modules', 'tfx-cli', '_build', 'tfx-cli.js');
const out = execFileSync(
  process.execPath,
  [
    tfx,
    'extension',
    'create',
    '--root',
    staging,
    '--manifest-globs',
    'vss-extension.json',
    '--overrides-file',
    overridesPath,
    '--output-path',
    values['output-path'],
    '--no-prompt',
    '--json',
  ],
  { cwd: staging, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
);
const result = JSON.parse(out.slice(out.indexOf('{')));
const size = fs.statSync(result.path).size;
console.log(
  `packaged ${result.publisher}.${result.extensionId} ${result.version}: ${path.relative(process.cwd(), result.path)} (${(size / 1024).toFixed(0)} KiB)`,
);
