/**
 * Golden `--json` (and text) output of the verbs for a fixed sequence of inputs: refactoring must leave
 * it byte-identical (issue 16). Volatile parts (times, durations, pids, temp paths, random ids of the
 * fakes) are replaced by placeholders before the comparison. To accept a deliberate change:
 *   KINDLER_UPDATE_GOLDEN=1 node --import tsx --test test/golden.test.ts
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Principal } from '../src/commands/index.js';
import { ROOT, makeWorld, startEngine, verb } from './helpers.js';

const GOLDEN = join(ROOT, 'test', 'golden', 'verbs.txt');
const BOB: Principal = { user: 'bob', role: 'operator', source: 'test' };
const VIC: Principal = { user: 'vic', role: 'viewer', source: 'test' };

test('the verbs print byte-identical output for the same inputs (golden file)', async (t) => {
  const w = makeWorld({
    checkHostPorts: false,
    ports: { http: { from: 41000, to: 41009 }, https: { from: 41100, to: 41109 }, api: { from: 41200, to: 41209 } },
  });
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });
  const steps: [Principal | undefined, string[]][] = [
    [undefined, ['version', '--json']],
    [undefined, ['create', 'alpha', '--wait', '--json']],
    [BOB, ['create', 'beta', '--provider', 'kind', '--agents', '1', '--ttl', '2h', '--wait', '--json']],
    [undefined, ['create', 'Bad_Name', '--json']],
    [undefined, ['create', 'gamma', '--servers', '9', '--json']],
    [undefined, ['create', 'alpha', '--json']],
    [VIC, ['create', 'delta', '--json']],
    [undefined, ['list', '--json']],
    [undefined, ['list']],
    [undefined, ['show', 'alpha', '--json']],
    [undefined, ['show', 'beta']],
    [undefined, ['show', 'nope', '--json']],
    [undefined, ['tasks', '--json']],
    [undefined, ['task', 't-1', '--json']],
    [undefined, ['logs', 't-2']],
    [undefined, ['stop', 'alpha', '--wait', '--json']],
    [undefined, ['start', 'alpha', '--wait', '--json']],
    [BOB, ['extend', 'beta', '1h', '--json']],
    [BOB, ['delete', 'alpha', '--json']],
    [undefined, ['delete', 'beta', '--wait', '--json']],
    [undefined, ['routes', '--json']],
    [undefined, ['reconcile', '--dry-run', '--json']],
    [undefined, ['audit', '--json']],
    [undefined, ['list', '--json']],
    [undefined, ['help']],
  ];
  let text = '';
  for (const [actor, argv] of steps) {
    const r = await verb(engine, argv, actor);
    // A task log interleaves a tool's stdout and stderr as they arrived: compare its lines as a set.
    // kind ends with one of four salutations, picked at random.
    const salutation = /^(Have a nice day!|Thanks for using kind!|Not sure what to do next\?|Have a question, bug, or feature request\?).*$/gm;
    const out =
      argv[0] === 'logs' && !argv.includes('--json')
        ? `${r.out.replace(salutation, '<kind salutation>').split('\n').filter(Boolean).sort().join('\n')}\n`
        : r.out.replace(salutation, '<kind salutation>');
    text += `==> ${actor?.user ?? 'alice'}: kindler ${argv.join(' ')}\nexit ${r.code}\n--- stdout\n${out}--- stderr\n${r.err}\n`;
  }
  const norm = text
    .split(w.dir)
    .join('<world>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/\b\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?\b/g, '<time>')
    .replace(/\b\d\d:\d\d:\d\d\b/g, '<hms>')
    .replace(/(\.kindler-[a-z]+-[a-z0-9-]+)\.[A-Za-z0-9]{6}\//g, '$1.<tmp>/')
    .replace(/"(pid|pidStart)":\s*"?\d+"?/g, '"$1":<n>')
    .replace(/"(durationMs|ms|elapsedMs)":\s*\d+/g, '"$1":<n>')
    .replace(/\b\d+(\.\d+)? ?(ms|s)\b(?= ago| left|\)|,|$)/gm, '<dur>')
    .replace(/\b(in|for) \d+[hms](\d+[ms])?\b/g, '$1 <dur>')
    .replace(/(\d+h)?\d+m left|\d+s left/g, '<left>')
    .replace(/"version":\s*"[^"]*"/g, '"version":"<v>"')
    .replace(/node v\d+\.\d+\.\d+/g, 'node <v>');
  if (process.env.KINDLER_UPDATE_GOLDEN || !existsSync(GOLDEN)) {
    writeFileSync(GOLDEN, norm);
    t.diagnostic(`wrote ${GOLDEN}`);
    return;
  }
  const want = readFileSync(GOLDEN, 'utf8');
  if (norm !== want) {
    const a = want.split('\n');
    const b = norm.split('\n');
    const i = a.findIndex((l, k) => l !== b[k]);
    assert.fail(
      `output differs from ${GOLDEN} at line ${i + 1}:\n  golden: ${a[i]}\n  now:    ${b[i]}\n(run with KINDLER_UPDATE_GOLDEN=1 to accept a deliberate change)`,
    );
  }
});
