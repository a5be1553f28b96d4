import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import JSZip from 'jszip';

import { makeTempDir, repoRoot } from '../support/paths';
import { describeRun, runTask } from '../support/taskRunner';

interface TaskInput {
  name: string;
  type: string;
  label: string;
  helpMarkDown?: string;
  groupName?: string;
  visibleRule?: string;
  required?: boolean;
  options?: Record<string, string>;
}
interface TaskJson {
  id: string;
  name: string;
  version: { Major: number; Minor: number; Patch: number };
  instanceNameFormat: string;
  groups?: Array<{ name: string; visibleRule?: string }>;
  inputs: TaskInput[];
  outputVariables?: Array<{ name: string }>;
  messages?: Record<string, string>;
  execution: Record<string, { target: string }>;
  runsOn: string[];
  minimumAgentVersion: string;
}

const extension = JSON.parse(fs.readFileSync(path.join(repoRoot, 'vss-extension.json'), 'utf8'));
const taskNames: string[] = extension.contributions
  .filter((c: { type: string }) => c.type === 'ms.vss-distributed-task.task')
  .map((c: { properties: { name: string } }) => c.properties.name);
const readTaskJson = (name: string): TaskJson =>
  JSON.parse(fs.readFileSync(path.join(repoRoot, 'tasks', name, 'task.json'), 'utf8'));

/** All TypeScript a task bundles from its own folder and tasks/common. */
function sourcesOf(task: string): string {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) files.push(full);
    }
  };
  walk(path.join(repoRoot, 'tasks', task));
  walk(path.join(repoRoot, 'tasks', 'common'));
  return files.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
}

describe('extension package', function () {
  this.timeout(180_000);
  let outDir: string;
  let vsixPath: string;
  let zip: JSZip;

  before(async () => {
    outDir = makeTempDir('vsix-');
    execFileSync(process.execPath, [path.join(repoRoot, '.ci', 'package.mjs'), '--output-path', outDir], {
      cwd: repoRoot,
      stdio: 'pipe',
    });
    vsixPath = path.join(
      outDir,
      fs.readdirSync(outDir).find((f) => f.endsWith('.vsix'))!,
    );
    zip = await JSZip.loadAsync(fs.readFileSync(vsixPath));
  });
  after(() => fs.rmSync(outDir, { recursive: true, force: true }));

  it('holds the manifest, icon, overview and each task bundled in one file, and no node_modules', () => {
    const names = Object.keys(zip.files);
    for (const required of ['extension.vsixmanifest', 'extension.vsomanifest', 'images/icon.png', 'overview.md'])
      assert.ok(names.includes(required), `${required} missing from the .vsix`);
    for (const task of taskNames) {
      for (const file of ['task.json', 'index.js', 'icon.png'])
        assert.ok(names.includes(`${task}/${file}`), `${task}/${file} missing from the .vsix`);
    }
    assert.deepEqual(
      names.filter((n) => /node_modules|\.taskkey|\.ts$|\.map$/.test(n)),
      [],
    );
    const size = fs.statSync(vsixPath).size;
    console.log(`      .vsix size: ${(size / 1024).toFixed(0)} KiB, ${names.length} entries`);
    assert.ok(size < 10 * 1024 * 1024, `.vsix is ${size} bytes; it should stay small`);
  });

  it('names the extension and takes publisher and id overrides at package time', async () => {
    const vsixManifest = await zip.file('extension.vsixmanifest')!.async('string');
    assert.match(vsixManifest, /Model Delivery for Azure Pipelines/);
    const overridden = makeTempDir('vsix-override-');
    try {
      execFileSync(
        process.execPath,
        [
          path.join(repoRoot, '.ci', 'package.mjs'),
          '--output-path',
          overridden,
          '--publisher',
          'contoso',
          '--extension-id',
          'model-delivery-private',
        ],
        { cwd: repoRoot, stdio: 'pipe' },
      );
      const file = fs.readdirSync(overridden).find((f) => f.endsWith('.vsix'))!;
      assert.equal(file, `contoso.model-delivery-private-${extension.version}.vsix`);
      const manifest = await (
        await JSZip.loadAsync(fs.readFileSync(path.join(overridden, file)))
      )
        .file('extension.vsixmanifest')!
        .async('string');
      assert.match(manifest, /Publisher="contoso"/);
    } finally {
      fs.rmSync(overridden, { recursive: true, force: true });
    }
  });

  it('ships a 128×128 PNG icon', () => {
    const png = fs.readFileSync(path.join(repoRoot, 'images', 'icon.png'));
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    assert.equal(png.readUInt32BE(16), 128);
    assert.equal(png.readUInt32BE(20), 128);
  });
});

/** Every relative import in a TypeScript file, resolved to a path relative to tasks/. */
function relativeImportsUnderTasks(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']*)'/g)].map((m) => m[1]);
  return specifiers.map((s) => path.relative(path.join(repoRoot, 'tasks'), path.resolve(path.dirname(file), s)));
}

describe('task boundaries', () => {
  const tasksDir = path.join(repoRoot, 'tasks');
  const folders = fs.readdirSync(tasksDir, { withFileTypes: true }).filter((e) => e.isDirectory());
  const tsFiles = (dir: string): string[] =>
    fs
      .readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => path.join(e.parentPath, e.name));

  for (const folder of folders) {
    const own = folder.name;
    it(`${own} imports only from its own folder and tasks/common`, () => {
      const offending: string[] = [];
      for (const file of tsFiles(path.join(tasksDir, own))) {
        for (const target of relativeImportsUnderTasks(file)) {
          const top = target.split(path.sep)[0];
          // tasks/common is shared by every task and imports no task folder itself.
          const allowed = own === 'common' ? top === 'common' : top === own || top === 'common';
          if (!allowed) offending.push(`${path.relative(repoRoot, file)} imports ${target}`);
        }
      }
      assert.deepEqual(offending, [], 'tasks talk through outputs and files; shared code belongs in tasks/common');
    });
  }
});

describe('task.json contracts', () => {
  it('every task has a unique permanent GUID and a unique name', () => {
    const ids = taskNames.map((n) => readTaskJson(n).id);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  for (const name of taskNames) {
    describe(name, () => {
      const task = readTaskJson(name);
      const sources = sourcesOf(name);
      const inputNames = new Set(task.inputs.map((i) => i.name));
      const groupNames = new Set((task.groups ?? []).map((g) => g.name));

      it('has the conventions every task follows', () => {
        assert.equal(task.name, name);
        assert.ok(task.instanceNameFormat, 'instanceNameFormat');
        assert.deepEqual(Object.keys(task.execution).sort(), ['Node20_1', 'Node24']);
        for (const handler of Object.values(task.execution)) assert.equal(handler.target, 'index.js');
        assert.deepEqual([...task.runsOn].sort(), ['Agent', 'DeploymentGroup']);
        assert.match(task.minimumAgentVersion, /^\d+\.\d+\.\d+$/);
        for (const part of ['Major', 'Minor', 'Patch'] as const) assert.equal(typeof task.version[part], 'number');
      });

      it('has help on every input, real groups, and visibleRules that name real inputs', () => {
        assert.equal(inputNames.size, task.inputs.length, 'input names are unique');
        const rules = [
          ...task.inputs.map((i) => [i.name, i.visibleRule]),
          ...(task.groups ?? []).map((g) => [`group ${g.name}`, g.visibleRule]),
        ] as Array<[string, string | undefined]>;
        for (const [owner, rule] of rules) {
          if (!rule) continue;
          assert.ok(
            !(rule.includes('&&') && rule.includes('||')),
            `${owner}'s visibleRule mixes && and ||, which Azure Pipelines does not evaluate`,
          );
          for (const clause of rule.split(/\s*(?:&&|\|\|)\s*/)) {
            const referenced = clause
              .trim()
              .split(/\s*(?:==|!=|=|<=|>=|<|>|NotEndsWith|EndsWith|NotContains|Contains)\s*/)[0];
            assert.ok(inputNames.has(referenced), `${owner}'s visibleRule names unknown input '${referenced}'`);
          }
        }
        for (const input of task.inputs) {
          assert.ok(input.helpMarkDown && input.helpMarkDown.length > 10, `${input.name} needs helpMarkDown`);
          assert.ok(input.label, `${input.name} needs a label`);
          if (input.groupName)
            assert.ok(groupNames.has(input.groupName), `${input.name} is in unknown group ${input.groupName}`);
        }
      });

      it('reads every input it declares, and declares every input it reads', () => {
        // parameters.ts, and the shared input modules it imports (e.g. storage connection inputs).
        const paramsFile = path.join(repoRoot, 'tasks', name, 'parameters.ts');
        const own = fs.readFileSync(paramsFile, 'utf8');
        const imported = [...own.matchAll(/from '(\.\.?\/[^']+)'/g)]
          .map((m) => path.resolve(path.dirname(paramsFile), `${m[1]}.ts`))
          .filter((f) => fs.existsSync(f) && !f.endsWith(path.join('common', 'inputs.ts')));
        const params = [own, ...imported.map((f) => fs.readFileSync(f, 'utf8'))].join('\n');
        const read = new Set(
          [
            ...params.matchAll(
              /\b(?:optionalString|requiredString|secretString|enumInput|booleanInput|integerInput|byteSizeInput|existingPath|listInput|mapInput|connectionInput)\(\s*'([^']+)'/g,
            ),
          ].map((m) => m[1]),
        );
        for (const r of read)
          assert.ok(inputNames.has(r), `parameters.ts reads '${r}', which task.json does not declare`);
        for (const i of inputNames)
          assert.ok(
            read.has(i) || params.includes(`'${i}'`),
            `task.json declares '${i}', which parameters.ts never reads`,
          );
      });

      it('has every tl.loc key in messages', () => {
        for (const m of sources.matchAll(/tl\.loc\(\s*'([^']+)'/g))
          assert.ok(task.messages?.[m[1]], `tl.loc('${m[1]}') has no message in task.json`);
      });

      it('sets every output variable it declares', () => {
        for (const output of task.outputVariables ?? []) {
          assert.ok(
            new RegExp(`setOutput\\(\\s*'${output.name}'`).test(sources) || sources.includes(`'${output.name}'`),
            `output ${output.name} is never set`,
          );
        }
      });
    });
  }
});

describe('bundled tasks start as the agent starts them', () => {
  for (const name of taskNames) {
    for (const node of ['node20', 'node24'] as const) {
      it(`${name} under ${node}, given no inputs, fails cleanly with "Input required"`, async () => {
        const run = await runTask(name, { node, inputs: {} });
        assert.equal(run.result, 'Failed', describeRun(run));
        assert.match(run.message, /^Input required: \w+/, describeRun(run));
        assert.equal(
          run.exitCode,
          0,
          'the agent reads the result from task.complete; the process itself exits normally',
        );
        assert.equal(run.stderr, '', 'nothing on stderr');
      });
    }
  }
});
