import type { KubeObject } from './objects';
import type { ResourceType } from './resources';
import { badRequest } from './status';

type Requirement =
  { key: string; op: 'in' | 'notin'; values: string[] } | { key: string; op: 'exists' | 'doesnotexist' };

export type ObjectMatcher = (object: KubeObject) => boolean;

/** Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h` like the apiserver does; bad syntax is a 400. */
export function parseLabelSelector(text: string | null): ObjectMatcher {
  if (!text?.trim()) return () => true;
  const requirements: Requirement[] = [];
  for (const part of splitOutsideParens(text)) {
    const term = part.trim();
    let match: RegExpMatchArray | null;
    if ((match = term.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      requirements.push({
        key: match[1],
        op: match[2] as 'in' | 'notin',
        values: match[3]
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean),
      });
    } else if ((match = term.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) {
      requirements.push({ key: match[1], op: match[2] === '!=' ? 'notin' : 'in', values: [match[3]] });
    } else if ((match = term.match(/^!\s*([\w./-]+)$/))) {
      requirements.push({ key: match[1], op: 'doesnotexist' });
    } else if ((match = term.match(/^([\w./-]+)$/))) {
      requirements.push({ key: match[1], op: 'exists' });
    } else {
      throw badRequest(`unable to parse requirement: found '${term}', expected: in, notin, =, ==, !=, gt, lt`);
    }
  }
  return (object) => labelsSatisfy(object.metadata.labels ?? {}, requirements);
}

function splitOutsideParens(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

function labelsSatisfy(labels: Record<string, string>, requirements: Requirement[]): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'doesnotexist':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]);
      case 'notin':
        return !has || !r.values.includes(labels[r.key]);
    }
  });
}

export interface LabelSelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Matches a metav1.LabelSelector (Deployment/ReplicaSet/PDB selectors). An empty selector matches everything. */
export function labelSelectorMatches(
  selector: LabelSelectorSpec | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector) return false;
  const requirements: Requirement[] = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => ({
    key,
    op: 'in',
    values: [value],
  }));
  for (const e of selector.matchExpressions ?? []) {
    const op = e.operator.toLowerCase();
    if (op === 'in' || op === 'notin') requirements.push({ key: e.key, op, values: e.values ?? [] });
    else if (op === 'exists' || op === 'doesnotexist') requirements.push({ key: e.key, op });
  }
  return labelsSatisfy(labels ?? {}, requirements);
}

/** Service selectors are plain maps; a service without a selector selects no pods. */
export function mapSelectorMatches(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

function fieldValue(object: KubeObject, path: string): string {
  if (path === 'source') {
    const source = (object as { source?: { component?: string } }).source;
    return source?.component ?? '';
  }
  let current: unknown = object;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return '';
    current = (current as Record<string, unknown>)[part];
  }
  return current === undefined || current === null ? '' : String(current);
}

/** Field selectors only accept the labels the type registers; others are a 400 like the apiserver's. */
export function parseFieldSelector(text: string | null, type: ResourceType): ObjectMatcher {
  if (!text?.trim()) return () => true;
  const terms = text.split(',').map((term) => {
    const match = term.trim().match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!match) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    const [, field, op, value] = match as unknown as [string, string, string, string];
    const allowed = ['metadata.name', 'metadata.namespace', ...type.fieldLabels];
    if (!allowed.includes(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    return { field, negate: op === '!=', value };
  });
  return (object) => terms.every((t) => (fieldValue(object, t.field) === t.value) !== t.negate);
}
