/**
 * `npm run lint:layers`: checks every import in src/ against kindler's layers, and fails (exit 1) with one
 * line per violation naming the file, the import and the rule. `node --import tsx tools/lint-layers.ts [SRC]`
 * checks another tree laid out like src/ (the test plants violations in one).
 *
 * The layers, highest first. A module may import its own layer and any lower one, never a higher one, and
 * never a different layer of the same rank (engine and access sit side by side, as do store and provision).
 *
 *   rank  layer      what                                                        paths (under src/)
 *   7     main       entry points: build the engine, the jobs and the faces      cli.ts, tui-cli.ts, daemon.ts
 *   6     face       what users talk to: SSH, the TUI, the control socket        ssh/, tui/, control/
 *   5     commands   the verbs every face runs, the session backend, Service     commands/
 *   4     cron       scheduled jobs (reconcile, TTL, retention) over the engine  cron/
 *   3     engine     tasks: queue, runner, logs, the events feed, post steps     engine/
 *   3     access     roles, authorize(), the users file                          access/
 *   2     store      the state file, the journal, the lock, config loading       store/
 *   2     provision  script calls, routes, GitOps, hooks, host ports, doctor     provision/
 *   1     os         operating-system primitives: atomic files, processes        os/
 *   0     core       types and rules, pure                                       core/
 *
 * On top of the order, a face never imports engine, cron or store, not even a type: it acts through
 * commands (the Service, the session backend) and reads the shapes in core (and may use os's primitives). Every file under src/ must
 * belong to a layer, so a new directory is placed here before it is used.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

interface Layer {
  name: string;
  rank: number;
  /** Directories (ending in /) or files, relative to the source root. */
  paths: string[];
}

export const LAYERS: readonly Layer[] = [
  { name: 'main', rank: 7, paths: ['cli.ts', 'tui-cli.ts', 'daemon.ts'] },
  { name: 'face', rank: 6, paths: ['ssh/', 'tui/', 'control/'] },
  { name: 'commands', rank: 5, paths: ['commands/'] },
  { name: 'cron', rank: 4, paths: ['cron/'] },
  { name: 'engine', rank: 3, paths: ['engine/'] },
  { name: 'access', rank: 3, paths: ['access/'] },
  { name: 'store', rank: 2, paths: ['store/'] },
  { name: 'provision', rank: 2, paths: ['provision/'] },
  { name: 'os', rank: 1, paths: ['os/'] },
  { name: 'core', rank: 0, paths: ['core/'] },
];

/** Layers a face must never import, whatever the order says. */
const FACE_FORBIDDEN = new Set(['engine', 'cron', 'store']);

export function layerOf(rel: string): Layer | undefined {
  const p = rel.split(sep).join('/');
  return LAYERS.find((l) => l.paths.some((x) => (x.endsWith('/') ? p.startsWith(x) : p === x)));
}

/** Every module specifier in a file: imports and re-exports (type-only ones too), import() calls and import types. */
export function importsOf(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier))
      out.push(n.moduleSpecifier.text);
    else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression))
      out.push(n.moduleReference.expression.text);
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteralLike(n.arguments[0]))
      out.push(n.arguments[0].text);
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) out.push(n.argument.literal.text);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** The source file a relative specifier names (`./x.js` is `./x.ts`), or null when there is none. */
function resolveSpecifier(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec);
  const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile()) ?? null;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|tsx)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** One line per violation in the tree at `root` (paths shown relative to `shownFrom`), in file order. */
export function checkLayers(root: string, shownFrom = process.cwd()): string[] {
  const problems: string[] = [];
  const show = (p: string) => relative(shownFrom, p).split(sep).join('/');
  for (const file of sourceFiles(root)) {
    const mine = layerOf(relative(root, file));
    if (!mine) {
      problems.push(`${show(file)}: in no layer: add its directory to LAYERS in tools/lint-layers.ts`);
      continue;
    }
    for (const spec of importsOf(file, readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = resolveSpecifier(file, spec);
      if (!target) {
        problems.push(`${show(file)}: imports '${spec}': no such source file`);
        continue;
      }
      const rel = relative(root, target);
      if (rel.startsWith('..')) continue;
      const theirs = layerOf(rel);
      if (!theirs || theirs === mine) continue;
      const at = `${show(file)}: imports '${spec}' (${theirs.name})`;
      if (mine.name === 'face' && FACE_FORBIDDEN.has(theirs.name))
        problems.push(`${at}: a face never imports engine, cron or store (act through commands, read the shapes in core)`);
      else if (theirs.rank > mine.rank)
        problems.push(`${at}: ${mine.name} (rank ${mine.rank}) must not import the higher layer ${theirs.name} (rank ${theirs.rank})`);
      else if (theirs.rank === mine.rank)
        problems.push(`${at}: ${mine.name} and ${theirs.name} sit side by side (rank ${mine.rank}) and must not import each other`);
    }
  }
  return problems;
}

function main(argv: string[]): number {
  if (argv.length > 1) {
    process.stderr.write('lint:layers: takes at most one argument, the source root (default src)\n');
    return 2;
  }
  const root = resolve(argv[0] ?? 'src');
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    process.stderr.write(`lint:layers: source root ${root}: no such directory\n`);
    return 2;
  }
  const problems = checkLayers(root);
  for (const p of problems) process.stdout.write(`${p}\n`);
  if (problems.length) {
    process.stderr.write(`lint:layers: ${problems.length} violation${problems.length === 1 ? '' : 's'} (the layers are described in tools/lint-layers.ts)\n`);
    return 1;
  }
  process.stdout.write(`lint:layers: ${sourceFiles(root).length} files under ${relative(process.cwd(), root) || '.'}, no violations\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
