/**
 * Reading a task's log: `logs REF --tail N` returns its last lines and their index without
 * loading the whole file, and agrees line for line with reading it whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogCursor, readLogFile, readLogTail } from '../src/engine/logs.js';
import { LogBuffer } from '../src/tui/logbuffer.js';
import { verb, withEngine } from './helpers.js';

/** A small seeded generator (xorshift32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

test('log tail: the last N lines and their index agree with reading the whole file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-logtail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.deepEqual(await readLogTail(dir, 't-404', 5), { lines: [], from: 0, bytes: 0 }, 'a task with no log file has no lines');
  const seed = Number(process.env.KINDLER_LOGTAIL_SEED ?? Date.now() % 100_000);
  const r = rng(seed);
  const pieces = ['', 'a', 'ünïcödé ✓', '日本語のログ', 'x'.repeat(5000), '\r', 'tab\there'];
  // Fixed edge cases, then random files; some cross the 256 KiB read size several times.
  const texts = ['', '\n', '\n\n', 'one', 'one\n', 'a\n\nb\n', '\n\nlast', 'ä\nö\nü'];
  for (let k = 0; k < 40; k++) {
    const n = Math.floor(r() * (k % 4 === 0 ? 4000 : 60));
    const lines = Array.from({ length: n }, () => pieces[Math.floor(r() * pieces.length)]! + (r() < 0.3 ? 'y'.repeat(Math.floor(r() * 2000)) : ''));
    texts.push(lines.join('\n') + (r() < 0.8 ? '\n' : ''));
  }
  for (const [k, text] of texts.entries()) {
    writeFileSync(join(dir, 't-1.log'), text);
    const all = await readLogFile(dir, 't-1');
    for (const n of [1, 2, 3, 7, 100, 999, all.length, all.length + 1, 999_999]) {
      if (n < 1) continue;
      const got = await readLogTail(dir, 't-1', n);
      const want = all.slice(-n);
      assert.deepEqual(got.lines, want, `seed ${seed} file ${k} tail ${n}: lines`);
      assert.equal(got.from, all.length - want.length, `seed ${seed} file ${k} tail ${n}: index of the first line`);
      assert.equal(got.bytes, Buffer.byteLength(text), `seed ${seed} file ${k} tail ${n}: where reading goes on`);
    }
  }
});

test('log cursor: a growing file streamed in small steps yields every whole line once, in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-logcursor-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const seed = Number(process.env.KINDLER_LOGTAIL_SEED ?? Date.now() % 100_000);
  const r = rng(seed);
  const file = join(dir, 't-1.log');
  const cursor = new LogCursor(file);
  t.after(() => cursor.close());
  assert.deepEqual(await cursor.next(64), [], 'no file yet: nothing, and no error');
  const written: string[] = [];
  const got: string[] = [];
  let text = '';
  for (let k = 0; k < 300; k++) {
    // The writer appends arbitrary pieces: whole lines, half lines, multi-byte characters, long lines.
    const piece = r() < 0.1 ? 'ü'.repeat(Math.floor(r() * 300)) : r() < 0.5 ? `line ${k}\n` : `part ${k} 日本 `;
    text += piece;
    appendFileSync(file, piece);
    for (const l of await cursor.next(1 + Math.floor(r() * 100))) got.push(l);
  }
  appendFileSync(file, 'no line break at the end');
  text += 'no line break at the end';
  for (let lines = await cursor.next(50); lines.length; lines = await cursor.next(50)) got.push(...lines);
  written.push(...text.split('\n'));
  assert.deepEqual(got, written.slice(0, -1), `seed ${seed}: every whole line, once, in order`);
  assert.deepEqual(await cursor.next(50, true), written.slice(-1), 'the last read takes a line without its break');
  assert.match(written.at(-1)!, /no line break at the end$/);
  assert.deepEqual(await cursor.next(50, true), []);
  assert.equal(cursor.offset, Buffer.byteLength(text));
});

test('logs --tail: last lines with their index in --json, plain lines in text; a bad count changes nothing', async (t) => {
  const { w, engine } = await withEngine(t);
  const c = await verb(engine, ['create', 'tailed', '--wait', '--json']);
  assert.equal(c.code, 0, c.out + c.err);
  const id = JSON.parse(c.out).task.id as string;
  const whole = readFileSync(join(w.dataDir, 'logs', `${id}.log`), 'utf8')
    .split('\n')
    .slice(0, -1);
  assert.ok(whole.length > 10);

  const j = await verb(engine, ['logs', id, '--tail', '4', '--json']);
  assert.equal(j.code, 0, j.err);
  const body = JSON.parse(j.out);
  assert.deepEqual(body.lines, whole.slice(-4));
  assert.equal(body.from, whole.length - 4);
  assert.equal(body.task.id, id);
  const full = JSON.parse((await verb(engine, ['logs', 'tailed', '--json'])).out);
  assert.equal(full.from, 0);
  assert.deepEqual(full.lines, whole);

  const text = await verb(engine, ['logs', 'tailed', '--tail', '2']);
  assert.equal(text.out, `${whole.slice(-2).join('\n')}\n`);
  // --follow --tail on a finished task: the last lines, then the task's outcome.
  const f = await verb(engine, ['logs', id, '--follow', '--tail', '3']);
  assert.equal(f.code, 0, f.err);
  assert.equal(f.out, `${whole.slice(-3).join('\n')}\n`);
  assert.match(f.err, /succeeded/);

  for (const bad of ['0', '-1', 'ten', '1e3', '1000000', '']) {
    const r = await verb(engine, ['logs', id, `--tail=${bad}`]);
    assert.equal(r.code, 2, `--tail=${bad}`);
    assert.equal(r.out, '');
    assert.match(r.err, /^error: tail: must be a whole number 1-999999/);
  }
  // A TUI buffer filled from a tail counts the lines before it as not in memory.
  const b = new LogBuffer(id, 4);
  assert.deepEqual(b.history(body.lines, undefined, body.from), { ok: true, trimmed: 0 });
  assert.equal(b.dropped, whole.length - 4);
  assert.equal(b.end, whole.length);
  assert.deepEqual(b.live(whole.length, ['next']), { ok: true, trimmed: 0 });
  assert.equal(b.line(b.size - 1), 'next');
  assert.equal(b.line(0), whole.at(-4));
});
