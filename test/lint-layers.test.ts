/**
 * The layer check (`npm run lint:layers`, tools/lint-layers.ts): it passes on src/ and catches every kind
 * of violation planted in a throwaway tree laid out like src/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './helpers.js';

const LINT = join(ROOT, 'tools', 'lint-layers.ts');
/** tsx by URL: the planted tree's directory has no node_modules to resolve it from. */
const TSX = import.meta.resolve('tsx');

function lint(cwd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', TSX, LINT, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('lint:layers passes on src/', () => {
  const r = lint(ROOT, []);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /^lint:layers: \d+ files under src, no violations\n$/);
});

test('lint:layers fails with one line per planted violation: a face importing engine/store, an upward import, a sideways one, a file in no layer', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-layers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'src/core/types.ts': "import { Engine } from '../engine/engine.js';\nexport type Id = string;\nexport const e = Engine;\n",
    'src/engine/engine.ts':
      "import { authorize } from '../access/authorize.js';\nimport type { Id } from '../core/types.js';\nexport class Engine { id: Id = ''; a = authorize; }\n",
    'src/access/authorize.ts': 'export const authorize = () => true;\n',
    'src/store/state.ts': "export type { Id } from '../core/types.js';\nexport interface S { n: number }\n",
    'src/commands/index.ts':
      "import { Engine } from '../engine/engine.js';\nexport const run = async () => (await import('../daemon.js')).main(new Engine());\n",
    'src/tui/model.ts':
      "import type { Engine } from '../engine/engine.js';\nimport { run } from '../commands/index.js';\nexport const m = (e: Engine) => [e, run];\n",
    'src/control/protocol.ts': "export type S = import('../store/state.js').S;\n",
    'src/daemon.ts': "import { Engine } from './engine/engine.js';\nexport const main = (e: Engine) => e;\n",
    'src/extra/odd.ts': 'export const odd = 1;\n',
  };
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  const r = lint(dir, ['src']);
  assert.equal(r.code, 1, r.out + r.err);
  assert.deepEqual(r.out.trimEnd().split('\n'), [
    "src/commands/index.ts: imports '../daemon.js' (main): commands (rank 5) must not import the higher layer main (rank 7)",
    "src/control/protocol.ts: imports '../store/state.js' (store): a face never imports engine, cron or store (act through commands, read the shapes in core)",
    "src/core/types.ts: imports '../engine/engine.js' (engine): core (rank 0) must not import the higher layer engine (rank 3)",
    "src/engine/engine.ts: imports '../access/authorize.js' (access): engine and access sit side by side (rank 3) and must not import each other",
    'src/extra/odd.ts: in no layer: add its directory to LAYERS in tools/lint-layers.ts',
    "src/tui/model.ts: imports '../engine/engine.js' (engine): a face never imports engine, cron or store (act through commands, read the shapes in core)",
  ]);
  assert.equal(r.err, 'lint:layers: 6 violations (the layers are described in tools/lint-layers.ts)\n');
});

test('lint:layers: a source root that does not exist is one line and exit 2', () => {
  const r = lint(ROOT, ['no/such/dir']);
  assert.equal(r.code, 2);
  assert.equal(r.out, '');
  assert.equal(r.err, `lint:layers: source root ${join(ROOT, 'no/such/dir')}: no such directory\n`);
});
