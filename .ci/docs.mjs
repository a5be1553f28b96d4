// Writes docs/tasks/<Task>.md from each task.json: every input (name, label, type, default,
// required, help) and every output variable. A test regenerates them and fails when they drift.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const cell = (value) =>
  String(value ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\r?\n/g, '<br>');

function typeOf(input) {
  if (input.type.startsWith('connectedService:'))
    return `service connection (${input.type.slice('connectedService:'.length)})`;
  if (input.type === 'pickList' || input.type === 'radio') {
    const options = Object.keys(input.options ?? {});
    return `${input.type === 'radio' ? 'one of' : 'pick list'}: ${options.map((o) => `\`${o}\``).join(', ')}`;
  }
  return input.type;
}

export function renderTaskDoc(task) {
  const groups = new Map((task.groups ?? []).map((g) => [g.name, g.displayName]));
  const lines = [
    `# ${task.friendlyName} (\`${task.name}@${task.version.Major}\`)`,
    '',
    '<!-- Generated from tasks/' + task.name + '/task.json by `npm run docs`; do not edit by hand. -->',
    '',
    task.description,
    '',
    `Version ${task.version.Major}.${task.version.Minor}.${task.version.Patch} · category ${task.category} · runs on ${task.runsOn.join(', ')} · Node handlers ${Object.keys(task.execution).join(', ')} · agent ${task.minimumAgentVersion} or later.`,
    '',
    '## Inputs',
    '',
    '| Name | Label | Type | Default | Required | Shown when | Help |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const input of task.inputs) {
    const where = input.groupName ? ` (${groups.get(input.groupName) ?? input.groupName})` : '';
    lines.push(
      `| \`${input.name}\` | ${cell(input.label)}${cell(where)} | ${cell(typeOf(input))} | ${input.defaultValue ? `\`${cell(input.defaultValue)}\`` : ''} | ${input.required ? 'yes' : 'no'} | ${input.visibleRule ? `\`${cell(input.visibleRule)}\`` : ''} | ${cell(input.helpMarkDown)} |`,
    );
  }
  lines.push('', '## Output variables', '');
  if ((task.outputVariables ?? []).length === 0) lines.push('None.');
  else {
    lines.push('| Name | Description |', '| --- | --- |');
    for (const output of task.outputVariables) lines.push(`| \`${output.name}\` | ${cell(output.description)} |`);
  }
  lines.push('', '## YAML', '', '```yaml', `- task: ${task.name}@${task.version.Major}`, '  inputs:');
  for (const input of task.inputs.filter((i) => i.required && !i.visibleRule))
    lines.push(`    ${input.name}: ${input.defaultValue || `<${input.label}>`}`);
  lines.push('```', '');
  return lines.join('\n');
}

export function taskDocs() {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'vss-extension.json'), 'utf8'));
  return manifest.contributions
    .filter((c) => c.type === 'ms.vss-distributed-task.task')
    .map((c) => {
      const task = JSON.parse(fs.readFileSync(path.join(root, 'tasks', c.properties.name, 'task.json'), 'utf8'));
      return { file: path.join(root, 'docs', 'tasks', `${task.name}.md`), text: renderTaskDoc(task) };
    });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  fs.mkdirSync(path.join(root, 'docs', 'tasks'), { recursive: true });
  for (const doc of taskDocs()) fs.writeFileSync(doc.file, doc.text);
  console.log('docs/tasks written');
}
