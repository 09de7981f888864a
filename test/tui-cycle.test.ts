/**
 * The TUI's modules import each other without a cycle. Every `import … from './x.js'` and
 * `export … from './x.js'` under src/tui counts, type-only ones included: a type-only cycle still
 * ties the modules together (one cannot be read, moved or tested without the other), and it is how
 * the old app.ts cycle was made (helpers typed against the TuiApp class). Helpers take TuiPort;
 * no module there is over 400 lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const DIR = fileURLToPath(new URL('../src/tui/', import.meta.url));

/** The src/tui modules a module's source imports or re-exports (relative specifiers in the same folder). */
export function localImports(source: string): string[] {
  const out = new Set<string>();
  // Comments out first, so that a commented-out import is no edge.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const re = /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"](\.\/[^'"]+)['"]/g;
  for (const m of code.matchAll(re)) out.add(m[1]!.replace(/^\.\//, '').replace(/\.js$/, '.ts'));
  // Dynamic imports too.
  for (const m of code.matchAll(/\bimport\(\s*['"](\.\/[^'"]+)['"]\s*\)/g)) out.add(m[1]!.replace(/^\.\//, '').replace(/\.js$/, '.ts'));
  return [...out];
}

/** One cycle of the graph, as the modules on it (first repeated at the end), or null. */
export function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 'open');
    path.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 'open') return [...path.slice(path.indexOf(m)), m];
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of [...graph.keys()].sort())
    if (!state.has(n)) {
      const c = visit(n);
      if (c) return c;
    }
  return null;
}

function tuiGraph(): Map<string, string[]> {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
  return new Map(files.map((f) => [f, localImports(readFileSync(join(DIR, f), 'utf8')).filter((d) => files.includes(d))]));
}

test('the import parser sees value, type-only, re-export and side-effect imports, not comments', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    "import {\n  c,\n  type C,\n} from './c.js';",
    "export type { D } from './d.js';",
    "export * from './e.js';",
    "import './f.js';",
    "import x from '../core/x.js';",
    "// import { g } from './g.js';",
    "/* import { h } from './h.js'; */",
  ].join('\n');
  assert.deepEqual(localImports(src).sort(), ['a.ts', 'b.ts', 'c.ts', 'd.ts', 'e.ts', 'f.ts']);
});

test('the cycle finder finds a cycle and passes a DAG', () => {
  assert.deepEqual(
    findCycle(
      new Map([
        ['a', ['b']],
        ['b', ['c']],
        ['c', ['a']],
      ]),
    ),
    ['a', 'b', 'c', 'a'],
  );
  assert.equal(
    findCycle(
      new Map([
        ['a', ['b', 'c']],
        ['b', ['c']],
        ['c', []],
      ]),
    ),
    null,
  );
});

test('no import cycle under src/tui (type-only imports included)', () => {
  const graph = tuiGraph();
  assert.ok(graph.size > 10 && graph.has('app.ts'), 'reads the src/tui modules');
  const cycle = findCycle(graph);
  assert.equal(cycle, null, `import cycle: ${cycle?.join(' → ')}`);
});

test('only index.ts imports app.ts; the helpers import the port', () => {
  const graph = tuiGraph();
  const importers = [...graph].filter(([, deps]) => deps.includes('app.ts')).map(([f]) => f);
  assert.deepEqual(importers, ['index.ts']);
  for (const f of ['actions.ts', 'controls.ts', 'ops.ts', 'kubeconfig.ts']) assert.ok(graph.get(f)?.includes('port.ts'), `${f} takes TuiPort`);
});
test('no src/tui module is over 400 lines', () => {
  for (const f of readdirSync(DIR).filter((n) => n.endsWith('.ts'))) {
    const lines = readFileSync(join(DIR, f), 'utf8').split('\n').length - 1;
    assert.ok(lines <= 400, `${f} has ${lines} lines`);
  }
});
