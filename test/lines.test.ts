/**
 * From a script's output bytes to log lines: the bulk path for plain lines must give exactly the
 * lines the per-line path gives, in the same order, whatever the chunking; and a task log fed bulks
 * writes every line to its file while its events say what they skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { parseMarker } from '../src/core/markers.js';
import { cleanLine } from '../src/core/text.js';
import { ByteLines, countPlainLines, LineSplitter, type Bulk } from '../src/os/lines.js';
import { TaskLog } from '../src/engine/logs.js';
import { LogBuffer } from '../src/tui/logbuffer.js';

const SEED = process.env.KINDLER_LINES_SEED ? Number(process.env.KINDLER_LINES_SEED) : randomInt(2 ** 31);
process.stdout.write(`# lines seed ${SEED} (rerun with KINDLER_LINES_SEED=${SEED})\n`);

/** mulberry32 */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** A script's output: mostly plain lines, with every kind of line the bulk path must leave alone. */
function output(r: (n: number) => number): Buffer {
  const parts: Buffer[] = [];
  const plain = (len: number) => Buffer.from(Array.from({ length: len }, () => String.fromCharCode(0x20 + r(95))).join(''));
  const lines = 50 + r(200);
  for (let i = 0; i < lines; i++) {
    const k = r(100);
    if (k < 10) {
      // A run of plain lines, as a flood prints them.
      for (let j = 100 + r(1500); j > 0; j--) parts.push(plain(r(120)), Buffer.from('\n'));
    } else if (k < 80) parts.push(plain(r(120)), Buffer.from('\n'));
    else if (k < 82) parts.push(Buffer.from('::kindler:step 1/2 preflight Checking tools\n'));
    else if (k < 84) parts.push(Buffer.from(`na\u00efve \u6f22\u5b57 \u{1f600} ${i}\n`));
    else if (k < 86) parts.push(Buffer.from(`\x1b[31mred\x1b[0m\t${i}\n`));
    else if (k < 88) parts.push(plain(r(40)), Buffer.from('\r\n'));
    else if (k < 89) parts.push(plain(r(40)), Buffer.from('\r'));
    else if (k < 90) parts.push(Buffer.from([0xff, 0xc3, 0x0a]));
    else if (k < 91)
      parts.push(Buffer.from([0xe6, 0xbc]), plain(r(60)), Buffer.from('\n')); // a cut character
    // (this branch had the same condition as the one above, so C1 controls never came up)
    else if (k < 92) parts.push(Buffer.from('c1 \u0085 \u009b31m\n'));
    else if (k < 93)
      parts.push(plain(16_380 + r(10)), Buffer.from('\n')); // around the storage cap
    else if (k < 94) parts.push(Buffer.from('\x7f del\n'));
    else if (k < 95) parts.push(Buffer.from('\n'));
    else parts.push(plain(r(30)), Buffer.from(' ::kindler:step inside a line\n'));
  }
  if (r(3) === 0) parts.push(plain(r(50))); // no newline at the end
  return Buffer.concat(parts);
}

/** The per-line path alone: what every line would be without bulks. */
function reference(b: Buffer): string[] {
  const out: string[] = [];
  const d = new StringDecoder('utf8');
  const s = new LineSplitter((l) => out.push(l));
  s.push(d.write(b));
  const rest = d.end();
  if (rest) s.push(rest);
  s.end();
  return out;
}

test('bulk and per-line paths give the same lines in the same order, whatever the chunking', () => {
  const r = prng(SEED);
  let bulks = 0;
  let bulkLines = 0;
  for (let round = 0; round < 30; round++) {
    const b = output(r);
    const tailN = 1 + r(600);
    const got: string[] = [];
    const seen: Bulk[] = [];
    const bl = new ByteLines(
      (l) => got.push(l),
      (bulk) => {
        seen.push(bulk);
        const all = bulk.bytes.toString('latin1').split('\n');
        assert.equal(all.pop(), '', 'a bulk ends with a newline');
        assert.equal(all.length, bulk.count, 'a bulk counts its lines');
        assert.deepEqual(bulk.tail, all.slice(-tailN), 'a bulk carries its last lines');
        for (const l of all) {
          assert.equal(cleanLine(l), l, `a bulk line needs no sanitizing or cap (seed ${SEED})`);
          assert.equal(parseMarker(l), null, `a bulk line is no marker (seed ${SEED})`);
        }
        got.push(...all);
      },
      tailN,
    );
    // Chunks as the spool reader makes them: up to 256 KiB, often much less.
    for (let i = 0; i < b.length;) {
      const n = 1 + r(r(4) === 0 ? 300_000 : 9000);
      const chunk = Buffer.from(b.subarray(i, i + n));
      bl.push(chunk);
      chunk.fill(0x41); // the reader reuses its buffer: nothing may be kept from it
      i += n;
    }
    bl.end();
    assert.deepEqual(got, reference(b), `round ${round} (seed ${SEED})`);
    bulks += seen.length;
    bulkLines += seen.reduce((a, x) => a + x.count, 0);
  }
  assert.ok(bulks > 10 && bulkLines > 1000, `the bulk path was taken (${bulks} bulks, ${bulkLines} lines)`);
});

test('a character cut at a chunk boundary at the start of a line stays before the plain lines after it', () => {
  const plainRun = Buffer.from(`${'plain line\n'.repeat(1000)}`);
  for (const cut of [Buffer.from([0xe6]), Buffer.from([0xe6, 0xbc])]) {
    const got: string[] = [];
    const bl = new ByteLines(
      (l) => got.push(l),
      (bulk) => got.push(...bulk.bytes.toString('latin1').split('\n').slice(0, -1)),
      10,
    );
    bl.push(Buffer.concat([Buffer.from('first\n'), cut]));
    bl.push(plainRun);
    bl.end();
    assert.deepEqual(got, reference(Buffer.concat([Buffer.from('first\n'), cut, plainRun])));
    assert.equal(got[1], '\ufffdplain line');
  }
});

test('countPlainLines: printable ASCII and \\n only, lines up to the cap', () => {
  assert.equal(countPlainLines(Buffer.from('a\nb c\n\n')), 3);
  assert.equal(countPlainLines(Buffer.from('a\tb\n')), -1);
  assert.equal(countPlainLines(Buffer.from('a\rb\n')), -1);
  assert.equal(countPlainLines(Buffer.from('caf\u00e9\n')), -1);
  assert.equal(countPlainLines(Buffer.from('~\x7f\n')), -1);
  assert.equal(countPlainLines(Buffer.from('no end')), -1);
  assert.equal(countPlainLines(Buffer.from(`${'x'.repeat(10)}\n`), 10), 1);
  assert.equal(countPlainLines(Buffer.from(`${'x'.repeat(11)}\n`), 10), -1);
});

test('a task log fed bulks: every line in the file in order, events say what they skipped, the ring holds the newest', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-lines-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const events: { lines: string[]; from: number; skipped: number }[] = [];
  const log = new TaskLog(dir, 't-1', 50, (lines, from, skipped) => events.push({ lines, from, skipped }));
  const bulk = (a: number, b: number, tail: number): Bulk => {
    const lines = Array.from({ length: b - a }, (_, i) => `line ${a + i}`);
    return { bytes: Buffer.from(`${lines.join('\n')}\n`), count: lines.length, tail: lines.slice(-tail) };
  };
  // One tick: a line, a bulk that skips, a line, a bulk that does not skip, a line.
  log.add('line 0');
  log.addBulk(bulk(1, 201, 50));
  log.add('line 201');
  log.addBulk(bulk(202, 222, 50));
  log.add('line 222');
  await log.drain();
  // The next tick: a bulk that skips at the start of the batch, then a line.
  log.addBulk(bulk(223, 1223, 50));
  log.add('line 1223');
  await log.close();

  const file = readFileSync(log.file, 'utf8').split('\n');
  assert.equal(file.pop(), '');
  assert.deepEqual(
    file,
    Array.from({ length: 1224 }, (_, i) => `line ${i}`),
  );
  assert.equal(log.total, 1224);
  assert.deepEqual(
    events.map((e) => [e.from, e.skipped, e.lines.length]),
    [
      [151, 151, 72],
      [1173, 950, 51],
    ],
  );
  for (const e of events)
    assert.deepEqual(
      e.lines,
      Array.from({ length: e.lines.length }, (_, i) => `line ${e.from + i}`),
    );
  const tail = log.tail();
  assert.equal(tail.dropped, 1224 - 50);
  assert.deepEqual(
    tail.lines,
    Array.from({ length: 50 }, (_, i) => `line ${1174 + i}`),
  );

  // A TUI window joined to these events starts over at a skip instead of asking for the lines.
  const b = new LogBuffer('t-1', 100);
  b.history(['line 0'], undefined, 0);
  for (const e of events) assert.equal(b.live(e.from, e.lines, e.skipped).ok, true);
  assert.equal(b.dropped, 1173);
  assert.equal(b.line(b.size - 1), 'line 1223');
  // Held before the history arrives, a skip drops what was held before it.
  const h = new LogBuffer('t-1', 100);
  for (const e of events) h.live(e.from, e.lines, e.skipped);
  assert.equal(h.history(['line 0'], undefined, 0).ok, true);
  assert.equal(h.dropped, 1173);
  assert.equal(h.size, 51);
  // Without `skipped`, the same jump is a gap to fetch.
  const g = new LogBuffer('t-1', 2000);
  g.history(['line 0'], undefined, 0);
  assert.equal(g.live(events[0]!.from, events[0]!.lines).ok, false);
});
