import { Minimatch } from 'minimatch';

/**
 * A `.dockerignore`-style exclude list: patterns relative to the folder's root, `**` for any
 * depth, `!` to re-include, the last matching pattern wins, and a pattern that matches a
 * folder excludes everything in it.
 */
export interface ExcludeMatcher {
  isExcluded(relativePath: string, isDirectory: boolean): boolean;
  /** True when some `!` pattern could bring back a path inside an excluded folder. */
  hasNegations: boolean;
  patterns: string[];
}

interface Rule {
  negated: boolean;
  pattern: string;
  matcher: Minimatch;
}

/** Cleans one line as Docker does: comments and blanks dropped, leading `/` and `./` removed. */
export function parseExcludeLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

export function excludeMatcher(lines: readonly string[]): ExcludeMatcher {
  const rules: Rule[] = [];
  for (const raw of lines) {
    const negated = raw.startsWith('!');
    let pattern = (negated ? raw.slice(1) : raw).trim().replace(/\\/g, '/');
    pattern = pattern.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
    if (!pattern || pattern === '.') continue;
    rules.push({ negated, pattern, matcher: new Minimatch(pattern, { dot: true }) });
  }
  const matches = (rel: string, matcher: Minimatch): boolean => {
    if (matcher.match(rel)) return true;
    // A pattern naming a folder covers what is inside it.
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (matcher.match(parts.slice(0, i).join('/'))) return true;
    }
    return false;
  };
  return {
    patterns: rules.map((r) => (r.negated ? `!${r.pattern}` : r.pattern)),
    hasNegations: rules.some((r) => r.negated),
    isExcluded(relativePath: string): boolean {
      let excluded = false;
      for (const rule of rules) if (matches(relativePath, rule.matcher)) excluded = !rule.negated;
      return excluded;
    },
  };
}
