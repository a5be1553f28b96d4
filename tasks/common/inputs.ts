import * as fs from 'node:fs';
import * as path from 'node:path';

import * as tl from 'azure-pipelines-task-lib/task';

import { InputError } from './errors';
import { readSecretQuietly } from './secrets';

/**
 * Typed readers for task inputs. Only a task's parameters.ts calls these; every failure
 * is an InputError that names the input and says what to fix.
 */

export function optionalString(name: string): string | undefined {
  const value = tl.getInput(name, false)?.trim();
  return value ? value : undefined;
}

export function requiredString(name: string): string {
  const value = optionalString(name);
  if (value === undefined) throw InputError.required(name, "Set it in the task's inputs.");
  return value;
}

/** A secret-bearing input (SAS, connection string, key): registered before anything can print it. */
export function secretString(name: string, required = false): string | undefined {
  const value = readSecretQuietly(() => tl.getInput(name, false)?.trim());
  if (required && value === undefined)
    throw InputError.required(name, 'Give it from a secret variable, e.g. $(storageSas).');
  return value;
}

export function enumInput<T extends string>(name: string, allowed: readonly T[], fallback?: T): T {
  const value = optionalString(name);
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw InputError.required(name, `Use one of: ${allowed.join(', ')}.`);
  }
  const match = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!match) throw new InputError(name, `'${value}' is not a valid value. Use one of: ${allowed.join(', ')}.`);
  return match;
}

export function booleanInput(name: string, fallback = false): boolean {
  const value = optionalString(name);
  if (value === undefined) return fallback;
  if (/^(true|yes|1|on)$/i.test(value)) return true;
  if (/^(false|no|0|off)$/i.test(value)) return false;
  throw new InputError(name, `'${value}' is not a boolean. Use true or false.`);
}

export function integerInput(name: string, opts: { min?: number; max?: number; fallback?: number } = {}): number {
  const value = optionalString(name);
  if (value === undefined) {
    if (opts.fallback !== undefined) return opts.fallback;
    throw InputError.required(name, 'Give a whole number.');
  }
  if (!/^[+-]?\d+$/.test(value)) throw new InputError(name, `'${value}' is not a whole number.`);
  const n = Number(value);
  const range = `between ${opts.min ?? '-∞'} and ${opts.max ?? '∞'}`;
  if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    throw new InputError(name, `${n} is out of range; give a number ${range}.`);
  }
  return n;
}

/** Sizes such as "8MiB", "4 MB", "1048576". */
export function byteSizeInput(name: string, opts: { min?: number; max?: number; fallback: number }): number {
  const value = optionalString(name);
  if (value === undefined) return opts.fallback;
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(value);
  if (!m) throw new InputError(name, `'${value}' is not a size. Write bytes, or a number with KiB, MiB or GiB.`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const scale = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1;
  const n = Math.round(Number(m[1]) * scale);
  if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    throw new InputError(
      name,
      `${value} is out of range; give a size between ${opts.min ?? 0} and ${opts.max ?? '∞'} bytes.`,
    );
  }
  return n;
}

/** A file or folder that must exist on the agent; relative paths are taken from the working directory. */
export function existingPath(
  name: string,
  kind: 'file' | 'directory' | 'any' = 'any',
  required = true,
): string | undefined {
  const value = required ? requiredString(name) : optionalString(name);
  if (value === undefined) return undefined;
  const full = path.resolve(value);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(full);
  } catch {
    throw new InputError(name, `'${value}' does not exist on the agent. Check the path (resolved to ${full}).`);
  }
  if (kind === 'file' && !stat.isFile()) throw new InputError(name, `'${value}' is not a file.`);
  if (kind === 'directory' && !stat.isDirectory()) throw new InputError(name, `'${value}' is not a folder.`);
  return full;
}

/** One item a line (commas also separate); blank lines and lines starting with # are skipped. */
export function listInput(name: string, opts: { separators?: RegExp } = {}): string[] {
  const value = tl.getInput(name, false) ?? '';
  return value
    .split(opts.separators ?? /[\r\n,]+/)
    .map((s) => s.trim())
    .filter((s) => s && !s.startsWith('#'));
}

/** key=value, one a line. Keys must be unique. */
export function mapInput(name: string, opts: { keyPattern?: RegExp; keyHint?: string } = {}): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of listInput(name, { separators: /[\r\n]+/ })) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new InputError(name, `'${line}' is not key=value. Write one key=value a line.`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (opts.keyPattern && !opts.keyPattern.test(key)) {
      throw new InputError(name, `'${key}' is not a valid key${opts.keyHint ? ` (${opts.keyHint})` : ''}.`);
    }
    if (key in result) throw new InputError(name, `key '${key}' is given twice.`);
    result[key] = value;
  }
  return result;
}

/** The id of a service connection picked in an input; required when the input is. */
export function connectionInput(name: string, required = true): string | undefined {
  return required ? requiredString(name) : optionalString(name);
}
