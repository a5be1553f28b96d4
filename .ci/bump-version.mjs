// Bumps the Patch of every task whose code changed since a git ref, and the extension's version
// with them, so that an org that installs the new .vsix gets the new task versions (the agent
// caches tasks by version: a changed task with an unchanged version would not be picked up).
//   node .ci/bump-version.mjs [--since <ref>] [--dry-run]
// Without --since, the ref is the newest tag matching v*; a change under tasks/common counts
// for every task, since each bundle carries it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { since: { type: 'string' }, 'dry-run': { type: 'boolean', default: false } },
});
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();

const since =
  values.since ??
  (() => {
    try {
      return git('describe', '--tags', '--abbrev=0', '--match', 'v*');
    } catch {
      throw new Error('No v* tag to compare with: pass --since <ref>.');
    }
  })();
const changed = git('diff', '--name-only', since, '--', 'tasks').split('\n').filter(Boolean);
const commonChanged = changed.some((f) => f.startsWith('tasks/common/'));
const manifestPath = path.join(root, 'vss-extension.json');
const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
const taskNames = manifest.contributions
  .filter((c) => c.type === 'ms.vss-distributed-task.task')
  .map((c) => c.properties.name);

const bumped = [];
for (const name of taskNames) {
  if (!commonChanged && !changed.some((f) => f.startsWith(`tasks/${name}/`))) continue;
  const file = path.join(root, 'tasks', name, 'task.json');
  const task = JSON.parse(fs.readFileSync(file, 'utf8'));
  task.version.Patch += 1;
  bumped.push(`${name} ${task.version.Major}.${task.version.Minor}.${task.version.Patch}`);
  if (!values['dry-run']) fs.writeFileSync(file, JSON.stringify(task, null, 2) + '\n');
}
if (bumped.length === 0) {
  console.log(`No task changed since ${since}; nothing bumped.`);
  process.exit(0);
}
const [major, minor, patch] = manifest.version.split('.').map(Number);
manifest.version = `${major}.${minor}.${patch + 1}`;
if (!values['dry-run']) {
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  const pkgPath = path.join(root, 'package.json');
  const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
  pkg.version = manifest.version;
  fs.writeFileSync(pkgPath, JSON.stringify(pkg, null, 2) + '\n');
}
console.log(
  `Since ${since}: extension ${manifest.version}; tasks ${bumped.join(', ')}${values['dry-run'] ? ' (dry run)' : ''}.`,
);
console.log('Add a docs/CHANGELOG.md entry for this version, then run npm run docs.');
