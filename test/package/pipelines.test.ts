import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as yaml from 'js-yaml';

import { repoRoot } from '../support/paths';

/**
 * The sample pipelines users copy must stay true to the tasks: every input they set exists, every
 * input that is required and visible (given what they set, and the defaults) is set, and pick
 * lists get one of their options.
 */

interface TaskInput {
  name: string;
  type: string;
  required?: boolean;
  defaultValue?: string;
  visibleRule?: string;
  groupName?: string;
  options?: Record<string, string>;
}
interface TaskJson {
  id: string;
  name: string;
  version: { Major: number };
  inputs: TaskInput[];
  groups?: Array<{ name: string; visibleRule?: string }>;
}

const tasks = new Map<string, TaskJson>();
for (const name of fs.readdirSync(path.join(repoRoot, 'tasks'))) {
  const file = path.join(repoRoot, 'tasks', name, 'task.json');
  if (fs.existsSync(file)) tasks.set(name, JSON.parse(fs.readFileSync(file, 'utf8')));
}

/** Azure Pipelines' visibleRule: clauses of `input = value` / `!=` joined by && or ||. */
function visible(rule: string | undefined, values: Record<string, string>): boolean {
  if (!rule) return true;
  const evalClause = (clause: string) => {
    const m = /^\s*(\w+)\s*(!=|=)\s*(.*?)\s*$/.exec(clause);
    if (!m) throw new Error(`cannot read visibleRule clause '${clause}'`);
    const actual = values[m[1]] ?? '';
    const expected = m[3].replace(/^"(.*)"$/, '$1');
    return m[2] === '='
      ? actual.toLowerCase() === expected.toLowerCase()
      : actual.toLowerCase() !== expected.toLowerCase();
  };
  if (rule.includes('||')) return rule.split('||').some(evalClause);
  return rule.split('&&').every(evalClause);
}

function checkTaskUse(where: string, task: TaskJson, given: Record<string, string>): void {
  const declared = new Map(task.inputs.map((i) => [i.name, i]));
  for (const name of Object.keys(given)) assert.ok(declared.has(name), `${where}: ${task.name} has no input '${name}'`);
  const values: Record<string, string> = {};
  for (const input of task.inputs) values[input.name] = given[input.name] ?? input.defaultValue ?? '';
  const groups = new Map((task.groups ?? []).map((g) => [g.name, g]));
  for (const input of task.inputs) {
    const shown =
      visible(input.visibleRule, values) &&
      visible(input.groupName ? groups.get(input.groupName)?.visibleRule : undefined, values);
    if (!shown) continue;
    if (input.required && !input.defaultValue)
      assert.ok(given[input.name], `${where}: ${task.name} needs '${input.name}'`);
    if (input.type === 'pickList' && input.options && given[input.name] && !given[input.name].includes('$(')) {
      assert.ok(
        Object.keys(input.options).includes(given[input.name]),
        `${where}: ${task.name} '${input.name}' must be one of ${Object.keys(input.options).join(', ')}`,
      );
    }
  }
}

/** Every `- task: Name@N` step anywhere in a YAML pipeline. */
function yamlTaskSteps(node: unknown, found: Array<{ task: string; inputs: Record<string, unknown> }> = []) {
  if (Array.isArray(node)) node.forEach((n) => yamlTaskSteps(n, found));
  else if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    if (typeof obj.task === 'string')
      found.push({ task: obj.task, inputs: (obj.inputs as Record<string, unknown>) ?? {} });
    Object.values(obj).forEach((v) => yamlTaskSteps(v, found));
  }
  return found;
}

const pipelinesDir = path.join(repoRoot, 'docs', 'pipelines');

describe('sample pipelines', () => {
  for (const file of fs.readdirSync(pipelinesDir).filter((f) => f.endsWith('.yml'))) {
    it(`${file} uses our tasks as their task.json defines them`, () => {
      const doc = yaml.load(fs.readFileSync(path.join(pipelinesDir, file), 'utf8'));
      const ours = yamlTaskSteps(doc).filter((s) => tasks.has(s.task.split('@')[0]));
      assert.ok(ours.length > 0, `${file} uses none of the extension's tasks`);
      for (const step of ours) {
        const [name, major] = step.task.split('@');
        const task = tasks.get(name)!;
        assert.equal(
          Number(major),
          task.version.Major,
          `${file}: ${step.task} but the task's major version is ${task.version.Major}`,
        );
        checkTaskUse(file, task, Object.fromEntries(Object.entries(step.inputs).map(([k, v]) => [k, String(v)])));
      }
    });
  }

  for (const doc of ['README.md', path.join('docs', 'overview.md')]) {
    it(`the YAML examples in ${doc} use our tasks as their task.json defines them`, () => {
      const blocks = [...fs.readFileSync(path.join(repoRoot, doc), 'utf8').matchAll(/```yaml\n([\s\S]*?)```/g)].map(
        (m) => m[1],
      );
      assert.ok(blocks.length > 0, `${doc} has no YAML example`);
      for (const block of blocks) {
        for (const step of yamlTaskSteps(yaml.load(block)).filter((s) => tasks.has(s.task.split('@')[0]))) {
          checkTaskUse(
            doc,
            tasks.get(step.task.split('@')[0])!,
            Object.fromEntries(Object.entries(step.inputs).map(([k, v]) => [k, String(v)])),
          );
        }
      }
    });
  }

  it('the classic release definition refers to our tasks by GUID and sets their inputs correctly', () => {
    const definition = JSON.parse(fs.readFileSync(path.join(pipelinesDir, 'classic-release-definition.json'), 'utf8'));
    const byId = new Map([...tasks.values()].map((t) => [t.id, t]));
    const steps = definition.environments.flatMap((e: { deployPhases: Array<{ workflowTasks: unknown[] }> }) =>
      e.deployPhases.flatMap((p) => p.workflowTasks),
    ) as Array<{ taskId: string; version: string; inputs: Record<string, string> }>;
    assert.ok(steps.length >= 3);
    for (const step of steps) {
      const task = byId.get(step.taskId);
      assert.ok(task, `no task has id ${step.taskId}`);
      assert.equal(step.version, `${task.version.Major}.*`);
      checkTaskUse('classic-release-definition.json', task, step.inputs);
    }
  });
});
