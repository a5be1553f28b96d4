import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { makeTempDir, repoRoot } from '../support/paths';

/** .ci/bump-version.mjs, run in a scratch git repository holding copies of the manifests. */
describe('version bump script', () => {
  let dir: string;
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
      cwd: dir,
      encoding: 'utf8',
    });
  const version = (task: string) =>
    JSON.parse(fs.readFileSync(path.join(dir, 'tasks', task, 'task.json'), 'utf8')).version;
  const extensionVersion = () =>
    JSON.parse(fs.readFileSync(path.join(dir, 'vss-extension.json'), 'utf8')).version as string;

  beforeEach(() => {
    dir = makeTempDir('bump-');
    fs.mkdirSync(path.join(dir, '.ci'));
    fs.copyFileSync(path.join(repoRoot, '.ci', 'bump-version.mjs'), path.join(dir, '.ci', 'bump-version.mjs'));
    for (const file of ['vss-extension.json', 'package.json'])
      fs.copyFileSync(path.join(repoRoot, file), path.join(dir, file));
    for (const task of ['FetchModel', 'PublishModel', 'BakeModelImage', 'DeployToAKS', 'common']) {
      fs.mkdirSync(path.join(dir, 'tasks', task), { recursive: true });
      if (task !== 'common')
        fs.copyFileSync(path.join(repoRoot, 'tasks', task, 'task.json'), path.join(dir, 'tasks', task, 'task.json'));
      fs.writeFileSync(path.join(dir, 'tasks', task, 'code.ts'), 'export {};\n');
    }
    git('init', '-q');
    git('add', '.');
    git('commit', '-qm', 'release');
    git('tag', 'v1');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const bump = () =>
    execFileSync(process.execPath, [path.join(dir, '.ci', 'bump-version.mjs')], { cwd: dir, encoding: 'utf8' });

  it('bumps only the changed task and the extension, together', () => {
    const before = { fetch: version('FetchModel'), deploy: version('DeployToAKS'), extension: extensionVersion() };
    fs.appendFileSync(path.join(dir, 'tasks', 'FetchModel', 'code.ts'), '// changed\n');
    git('commit', '-qam', 'change FetchModel');
    const out = bump();
    assert.equal(version('FetchModel').Patch, before.fetch.Patch + 1, out);
    assert.deepEqual(version('DeployToAKS'), before.deploy);
    const [major, minor, patch] = before.extension.split('.').map(Number);
    assert.equal(extensionVersion(), `${major}.${minor}.${patch + 1}`);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version, extensionVersion());
  });

  it('bumps every task when the shared code they all bundle changed', () => {
    const before = ['FetchModel', 'PublishModel', 'BakeModelImage', 'DeployToAKS'].map((t) => version(t).Patch);
    fs.appendFileSync(path.join(dir, 'tasks', 'common', 'code.ts'), '// changed\n');
    git('commit', '-qam', 'change common');
    bump();
    assert.deepEqual(
      ['FetchModel', 'PublishModel', 'BakeModelImage', 'DeployToAKS'].map((t) => version(t).Patch),
      before.map((p) => p + 1),
    );
  });

  it('changes nothing when no task changed', () => {
    const extension = extensionVersion();
    assert.match(bump(), /No task changed since v1/);
    assert.equal(extensionVersion(), extension);
  });
});
