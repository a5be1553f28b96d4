import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import * as tl from 'azure-pipelines-task-lib/task';

import { scrub } from './secrets';

/** The Markdown page the run shows under "Extensions"; built up by the task and uploaded once. */
export class RunSummary {
  private readonly lines: string[] = [];

  constructor(readonly title: string) {}

  heading(text: string): this {
    this.lines.push('', `### ${text}`, '');
    return this;
  }

  paragraph(text: string): this {
    this.lines.push('', text, '');
    return this;
  }

  table(header: string[], rows: Array<Array<string | number>>): this {
    const cell = (v: string | number) => String(v).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
    this.lines.push(`| ${header.map(cell).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`);
    for (const row of rows) this.lines.push(`| ${row.map(cell).join(' | ')} |`);
    this.lines.push('');
    return this;
  }

  /** Two-column facts table: name, value. */
  facts(rows: Array<[string, string | number]>): this {
    return this.table(
      ['', ''],
      rows.map(([k, v]) => [`**${k}**`, v]),
    );
  }

  render(): string {
    return scrub([`## ${this.title}`, ...this.lines].join('\n').replace(/\n{3,}/g, '\n\n') + '\n');
  }

  /** Writes the page to the agent's temp folder and tells the agent to attach it. */
  upload(fileName: string): string {
    const dir =
      tl.getVariable('Agent.TempDirectory') ??
      process.env.AGENT_TEMPDIRECTORY ??
      fs.mkdtempSync(path.join(os.tmpdir(), 'summary-'));
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, fileName);
    fs.writeFileSync(file, this.render());
    tl.uploadSummary(file);
    return file;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
