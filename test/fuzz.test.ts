/**
 * Fuzzing the verbs and the TUI create form with inputs from a seeded PRNG: names, ports, durations,
 * flags, verbs; unicode, control and escape characters, very long strings.
 *
 *   KINDLER_FUZZ_SEED  the seed (default: random; printed, and named in every failure)
 *   KINDLER_FUZZ_N     inputs through runCommand (default 10,000)
 *   KINDLER_FUZZ_SSH   of those, how many also go over real SSH exec channels (default 500)
 *   KINDLER_FUZZ_FORM  key sequences through the create form's state machine (default 1,000)
 *   KINDLER_FUZZ_TUI   create-form submissions through the real TUI on a headless terminal (default 40)
 *
 * For every input: no crash; an invalid one exits non-zero with exactly one error line naming the
 * field (and the right field when the generator knows it), and changes no state; and nothing that
 * reaches the client carries an escape sequence or control character from the input or a script.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import xterm from '@xterm/headless';
import { UsersStore } from '../src/access/users.js';
import { runCommand, type Principal } from '../src/commands/index.js';
import { LocalSession } from '../src/commands/session.js';
import { RESERVED_NAMES } from '../src/core/names.js';
import type { Engine } from '../src/engine/engine.js';
import { keyId } from '../src/tui/keys.js';
import { verbErrorOf } from '../src/commands/argv-api.js';
import { CREATE_FIELDS, CreateForm, errorOf } from '../src/tui/forms.js';
import { openTui } from '../src/tui/index.js';
import { ALICE, makeTestKey, makeWorld, sshConnect, sshExec, startEngine, startTestSsh, type World } from './helpers.js';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const SEED = env('KINDLER_FUZZ_SEED', randomInt(2 ** 31));
const N = env('KINDLER_FUZZ_N', 10_000);
const SSH_N = Math.min(N, env('KINDLER_FUZZ_SSH', 500));
const FORM_N = env('KINDLER_FUZZ_FORM', 1000);
const TUI_N = env('KINDLER_FUZZ_TUI', 40);
process.stdout.write(`# fuzz seed ${SEED} (rerun with KINDLER_FUZZ_SEED=${SEED}); N=${N} ssh=${SSH_N} form=${FORM_N} tui=${TUI_N}\n`);

// ---- a seeded generator ----------------------------------------------------------------------------

/** mulberry32: small, fast, good enough to spread inputs; the same seed gives the same inputs. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

const NASTY = [
  '',
  ' ',
  '-',
  '--',
  '---',
  '-h',
  '=',
  '\\',
  "'",
  '"',
  '`',
  '$(id)',
  '`id`',
  ';rm -rf /',
  '|cat',
  '&&',
  '../../etc/passwd',
  '%s%n%x',
  '{bold}x{/bold}',
  '{red-fg}',
  '{',
  '}',
  '{/}',
  '\x00',
  '\x07',
  '\x08',
  '\t',
  '\n',
  '\r',
  '\r\n',
  '\x0b',
  '\x0c',
  '\x1b',
  '\x7f',
  '\x1b[2J',
  '\x1b[H',
  '\x1b]0;pwned\x07',
  '\x1b]52;c;cHduZWQ=\x07',
  '\x1bP+q\x1b\\',
  '\x1b[31m',
  '\x1bc',
  '\x9b2J',
  '\x9d0;t\x9c',
  '\u0085',
  'é',
  'e\u0301',
  'ümlaut',
  '日本語',
  '한국어',
  '🙂',
  '👩‍💻',
  '\u202eevil',
  '\u200b',
  '\ufeff',
  '\ud7ff',
  'Ω',
  'ǅ',
  'ﬁ',
  'NaN',
  'Infinity',
  '-1',
  '0',
  '00',
  '080',
  '1e3',
  '0x50',
  '1.5',
  ' 80',
  '80 ',
  '65536',
  '99999999999999999999',
  '+1',
  'true',
  'false',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
];
const VERB_NAMES = [
  'list',
  'show',
  'create',
  'delete',
  'start',
  'stop',
  'sync',
  'import-image',
  'tasks',
  'task',
  'logs',
  'cancel',
  'import-csv',
  'extend',
  'audit',
  'adopt',
  'routes',
  'whoami',
  'users',
  'version',
  'help',
];
const FLAG_NAMES = [
  'provider',
  'servers',
  'agents',
  'image',
  'http-port',
  'https-port',
  'api-port',
  'subnet',
  'ttl',
  'remove-on-failure',
  'wait',
  'json',
  'help',
  'cluster',
  'active',
  'limit',
  'follow',
  'user',
  'since',
  'dry-run',
  'last',
  'role',
  'key',
  'bogus',
];

/** A random string: a nasty token, random code points (any plane, controls included), or something very long. */
function junk(r: Rng, maxLen = 40): string {
  switch (r.int(6)) {
    case 0:
      return r.pick(NASTY);
    case 1:
      return r.pick(NASTY) + r.pick(NASTY) + r.pick(NASTY);
    case 2: {
      let s = '';
      for (let i = r.int(maxLen); i > 0; i--)
        s += String.fromCodePoint(r.pick([r.int(0x20), 0x20 + r.int(0x60), 0x7f + r.int(0x21), 0xa0 + r.int(0x2000), 0x1f300 + r.int(0x300)]));
      return s;
    }
    case 3:
      return r.pick(['a', 'Z', '9', '-', 'é', '\x1b[0m', '日']).repeat(1 + r.int(r.chance(0.3) ? 20_000 : 300));
    case 4:
      return mutate(r, validName(r));
    default:
      return `${r.int(100_000)}${r.pick(['', 's', 'm', 'h', 'd', 'y', 'ms', 'H', '.5', '-', ' '])}`;
  }
}

/** A name that passes every name rule (and is not the cluster the suite keeps). */
function validName(r: Rng): string {
  const a = 'abcdefghijklmnopqrstuvwxyz';
  let s = a[r.int(26)]!;
  for (let i = r.int(12); i > 0; i--) s += r.pick([...a, ...'0123456789', '-']);
  s = s.replace(/-+/g, '-').replace(/-$/, 'x');
  return RESERVED_NAMES.includes(s) || s === 'base' ? `${s}z` : s;
}

/** Independent oracle for the name rules (k3d: 32 characters). */
const nameIsValid = (s: string) => /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/.test(s) && !s.includes('--') && !RESERVED_NAMES.includes(s);
/** Valid for some provider (kind allows 40 characters, k3d 32): the forms may pick either. */
const nameIsValidAny = (s: string) => /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/.test(s) && !s.includes('--') && !RESERVED_NAMES.includes(s);

function mutate(r: Rng, s: string): string {
  const i = r.int(s.length + 1);
  switch (r.int(5)) {
    case 0:
      return s.slice(0, i) + r.pick(NASTY.filter((x) => x.length > 0)) + s.slice(i);
    case 1:
      return s.toUpperCase();
    case 2:
      return `${s}-`;
    case 3:
      return `${r.pick(['1', '-', '_', 'Ä', ' '])}${s}`;
    default:
      return s + 'x'.repeat(40);
  }
}

/** Independent oracles: what the verbs accept (leading zeros included: "080" is port 80). */
const countOk = (v: string, min: number, max: number) => /^[0-9]{1,3}$/.test(v) && Number(v) >= min && Number(v) <= max;
const portOk = (v: string) => /^[0-9]{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535;
const fix = (v: string, ok: (v: string) => boolean, bad: string) => (ok(v) ? bad : v);

/** An invalid value for one create field, known invalid by construction. */
const BAD: Record<string, (r: Rng) => string> = {
  provider: (r) => r.pick(['K3D', 'kind ', 'minikube', '', 'k3d\x1b[2J', junk(r)]).replace(/^(k3d|kind)$/, '$1x'),
  servers: (r) => fix(r.pick(['0', '8', '-1', '1.0', '', ' 1', '007x', junk(r)]), (v) => countOk(v, 1, 7), '0'),
  agents: (r) => fix(r.pick(['21', '-1', '1e1', '', 'two', junk(r)]), (v) => countOk(v, 0, 20), '99'),
  'http-port': (r) => fix(r.pick(['0', '65536', '-80', '80.0', '', 'http', '0x50', junk(r)]), portOk, '0'),
  'https-port': (r) => fix(r.pick(['70000', '', ' 443', junk(r)]), portOk, '0'),
  'api-port': (r) => fix(r.pick(['1234567', '', 'api', junk(r)]), portOk, '0'),
  ttl: (r) => r.pick(['0s', '0m', '366d', '9999999d', '2H', '1y', 'h', '-2h', '1h 30m', '', junk(r)]).replace(/^([0-9]{1,6}[smhd])+$/, '0s'),
  subnet: (r) => r.pick(['10.0.0.0/33', '10.0.0.1/16', '300.0.0.0/8', '10.0.0.0/4', 'fd00::/64', '', junk(r)]),
  image: (r) => r.pick(['UPPER:case', 'a b', `${'a'.repeat(300)}`, '-image', '', junk(r)]).replace(/^[a-z0-9][a-z0-9._\-/:@]{0,254}$/, 'BAD'),
};
const BAD_FIELDS = Object.keys(BAD);

interface Input {
  argv: string[];
  /** The field the error must name, when the generator knows it. */
  field?: string;
  /** Known invalid: must exit non-zero. */
  invalid: boolean;
}

/** One generated input for the verbs. */
function genInput(r: Rng): Input {
  const k = r.int(10);
  if (k <= 2) {
    // create with exactly one bad field; the others valid or absent.
    const bad = r.pick(BAD_FIELDS);
    const flags: string[] = [];
    const provider = bad === 'provider' ? BAD.provider!(r) : bad === 'subnet' ? 'k3d' : r.pick(['k3d', 'kind', undefined]);
    if (provider !== undefined) flags.push(`--provider=${provider}`);
    if (bad !== 'agents' && r.chance(0.3)) flags.push(`--agents=${r.int(3)}`);
    flags.push(`--${bad}=${bad === 'provider' ? provider : BAD[bad]!(r)}`);
    if (bad !== 'servers' && r.chance(0.2)) flags.push(`--servers=1`);
    return { argv: ['create', ...shuffle(r, flags), ...(r.chance(0.5) ? ['--json'] : []), '--', validName(r)], field: bad, invalid: true };
  }
  if (k === 3) {
    // create with a bad name (after --, so it cannot be taken for a flag).
    let name = junk(r, 70);
    if (nameIsValid(name)) name = `${name}_`;
    return { argv: ['create', ...(r.chance(0.5) ? ['--json'] : []), '--', name], field: 'name', invalid: true };
  }
  if (k === 4) {
    // a verb on a cluster or task that does not exist, or with a malformed reference.
    const verb = r.pick(['show', 'delete', 'start', 'stop', 'sync', 'logs', 'task', 'cancel', 'extend', 'import-image']);
    const ref = r.chance(0.5) ? `${validName(r)}q` : r.chance(0.5) ? `t-${100_000 + r.int(1e6)}` : junk(r);
    const argv = [verb, '--', ref];
    if (verb === 'extend') argv.push(r.chance(0.5) ? '1h' : junk(r));
    if (verb === 'import-image') argv.push(r.chance(0.5) ? 'nginx:1' : junk(r));
    return { argv, invalid: true };
  }
  if (k === 5) {
    // a bad flag: unknown, or a bool given a value, or a value flag without one.
    const verb = r.pick(VERB_NAMES.filter((v) => v !== 'help'));
    const flag = r.pick([`--${junk(r, 20)}`, '--bogus', `-${junk(r, 5)}`, '--wait=maybe', '--json=1', '--limit']);
    return { argv: [verb, flag], invalid: !/^--(json|help)?$|^-h?$/.test(flag) && flag !== '--limit' };
  }
  if (k === 6) {
    // limits, durations and times for the read verbs.
    const which = r.pick(['tasks --limit', 'audit --limit', 'audit --since', 'users']);
    if (which === 'users') {
      const action = r.chance(0.5) ? junk(r) : r.pick(['add', 'add-key', 'set-role', 'remove-key']);
      const argv = ['users', '--', action, validName(r) + (r.chance(0.5) ? 'ZZ' : '')];
      if (action === 'add') argv.splice(1, 0, `--role=${r.pick(['admin', 'viewer', junk(r)])}`, `--key=${junk(r)}`);
      if (action === 'add-key') argv.splice(1, 0, `--key=${junk(r)}`);
      if (action === 'set-role') argv.push(junk(r));
      if (action === 'remove-key') argv.push(junk(r));
      return { argv, invalid: true };
    }
    const [verb, flag] = which.split(' ') as [string, string];
    let v = junk(r);
    if (flag === '--limit' && /^[1-9][0-9]{0,5}$/.test(v)) v = '0';
    if (flag === '--since' && (/^([0-9]{1,6}[smhd])+$/.test(v) || /^\d{4}-\d{2}-\d{2}/.test(v))) v = '0s';
    return { argv: [verb, `${flag}=${v}`], field: flag.slice(2), invalid: true };
  }
  if (k === 7) {
    const v = junk(r, 30);
    return { argv: [v, ...(r.chance(0.5) ? [junk(r)] : [])], field: 'verb', invalid: !VERB_NAMES.includes(v) && !['--help', '-h', ''].includes(v) };
  }
  // chaos: a verb (or not) and random tokens; judged by the invariants only.
  const argv = [r.chance(0.8) ? r.pick(VERB_NAMES) : junk(r, 10)];
  for (let i = r.int(5); i > 0; i--) argv.push(r.chance(0.3) ? `--${r.pick(FLAG_NAMES)}${r.chance(0.5) ? `=${junk(r)}` : ''}` : junk(r));
  // Never a valid create/adopt/import: chaos must not start real work.
  if (['create', 'adopt', 'import-csv'].includes(argv[0]!)) argv.push('--servers=0');
  return { argv, invalid: false };
}

function shuffle<T>(r: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

// ---- checks ----------------------------------------------------------------------------------------

/** Control characters a client must never receive: C0 except \t and \n (and \r with a pty), DEL, C1. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;
const controlIn = (s: string, allow: string) => [...s].find((c) => CONTROL.test(c) && !allow.includes(c));
const show = (s: string) => JSON.stringify(s.length > 300 ? `${s.slice(0, 300)}…(${s.length})` : s);

/** The invariants for one verb's answer. Returns a problem, or null. */
function judge(inp: Input, code: number, out: string, err: string, allow = '\n\t'): string | null {
  const bad = controlIn(out, allow) ?? controlIn(err, allow);
  if (bad !== undefined) return `control character ${JSON.stringify(bad)} reached the client`;
  if (![0, 1, 2, 3, 4, 5, 10].includes(code)) return `exit ${code} is not a documented exit code`;
  if (inp.invalid && code === 0) return 'an invalid input exited 0';
  if (code === 0) return err === '' ? null : `exit 0 with stderr ${show(err)}`;
  const lines = err.replace(/\r\n/g, '\n').split('\n');
  if (lines.length !== 2 || lines[1] !== '') return `stderr is not exactly one line: ${show(err)}`;
  // A refusal names who and why ("vera is a viewer: ..."), not a field.
  if (code === 5) return /^error: \S.*\S$/.test(lines[0]!) && lines[0]!.length <= 400 ? null : `bad refusal line ${show(lines[0]!)}`;
  const m = /^error: (--)?("(?:[^"\\]|\\.)*"|[^\s:"]+): \S/.exec(lines[0]!);
  if (!m) return `the error line does not start with the field: ${show(lines[0]!)}`;
  if (lines[0]!.length > 400) return `the error line is ${lines[0]!.length} characters long`;
  if (/internal error/.test(lines[0]!)) return `internal error: ${show(lines[0]!)}`;
  if (inp.field && m[2] !== inp.field) return `the error names ${m[2]}, expected ${inp.field}: ${show(lines[0]!)}`;
  return null;
}

/** Everything in the state but the audit trail (refusals are audited on purpose). */
function stateKey(engine: Engine): string {
  const { audit: _audit, ...rest } = engine.store.data;
  return JSON.stringify(rest);
}

async function run(engine: Engine, argv: string[], actor: Principal, users?: UsersStore) {
  let out = '';
  let err = '';
  const code = await runCommand(argv, {
    engine,
    actor,
    ...(users ? { users } : {}),
    io: {
      out: (s) => (out += s),
      err: (s) => (err += s),
      isTTY: false,
      columns: 100,
      signal: new AbortController().signal,
      readFile: async () => {
        throw Object.assign(new Error('no files here'), { code: 'EACCES' });
      },
    },
  });
  return { code, out, err };
}

/** Quotes argv for the SSH exec command line (src/ssh/argv.ts: single quotes are literal). */
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

// ---- the suite -------------------------------------------------------------------------------------

interface Fixture {
  w: World;
  engine: Engine;
  users: UsersStore;
  keys: string;
}

let fx: Fixture | undefined;
before(async () => {
  const w = makeWorld();
  const engine = await startEngine(w);
  const keys = mkdtempSync(join(w.dir, 'keys-'));
  const usersFile = join(w.dir, 'users-direct.conf');
  const users = new UsersStore({ file: usersFile });
  // One real cluster, so that conflicts and read verbs have something to find.
  const r = await run(engine, ['create', 'base', '--wait'], ALICE);
  assert.equal(r.code, 0, r.err);
  fx = { w, engine, users, keys };
});
after(async () => {
  if (!fx) return;
  fx.users.close();
  await fx.engine.shutdown();
  fx.w.cleanup();
});
const fixture = async (): Promise<Fixture> => fx!;

test(`${N} generated inputs through runCommand: one error line naming the field, a documented exit code, no state change, no control characters`, async () => {
  const { engine, users } = await fixture();
  const r = prng(SEED);
  const viewer: Principal = { user: 'vera', role: 'viewer', source: 'fuzz' };
  await engine.store.flush();
  const fileBefore = readFileSync(engine.store.file, 'utf8');
  const stats = { invalid: 0, ok: 0, byCode: {} as Record<number, number> };
  for (let i = 0; i < N; i++) {
    const inp = genInput(r);
    const actor = i % 10 === 9 ? viewer : ALICE;
    const before = stateKey(engine);
    const res = await run(engine, inp.argv, actor, users);
    stats.byCode[res.code] = (stats.byCode[res.code] ?? 0) + 1;
    const problem = judge(actor === viewer ? { ...inp, field: undefined } : inp, res.code, res.out, res.err);
    const changed = res.code !== 0 && stateKey(engine) !== before;
    if (problem || changed) {
      assert.fail(
        `seed ${SEED}, input #${i} as ${actor.role}: ${problem ?? 'a failing input changed the state'}\nargv: ${show(JSON.stringify(inp.argv))}\nexit ${res.code}\nstdout: ${show(res.out)}\nstderr: ${show(res.err)}`,
      );
    }
    if (res.code === 0) stats.ok++;
    else stats.invalid++;
  }
  await engine.store.flush();
  // Audit aside: its events and, since the journal (schema 3), the counters that number them.
  const strip = (s: string) => JSON.stringify({ ...JSON.parse(s), audit: undefined, nextAuditSeq: undefined, auditFrom: undefined });
  assert.equal(strip(readFileSync(engine.store.file, 'utf8')), strip(fileBefore), 'the state file (audit aside) is unchanged');
  process.stdout.write(`# runCommand: ${N} inputs, exit codes ${JSON.stringify(stats.byCode)}\n`);
});

test(`${SSH_N} generated inputs over real SSH exec channels answer exactly as runCommand does, with clean bytes`, async (t) => {
  const { w, engine, users, keys } = await fixture();
  const key = makeTestKey(keys, 'fuzzer');
  const ssh = await startTestSsh(w, engine, { users: [`alice admin ${key.pub}`], limits: { maxChannelsPerConnection: 4, maxSessionsPerUser: 8 } });
  t.after(() => ssh.stop());
  const c = await sshConnect(ssh.srv.port, { privateKey: readFileSync(key.path) });
  t.after(() => c.end());
  const r = prng(SEED ^ 0x5eed);
  const sshActor: Principal = { user: 'alice', role: 'admin', source: 'fuzz' };
  const inputs = Array.from({ length: SSH_N }, () => genInput(r));
  let next = 0;
  const before = stateKey(engine);
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < inputs.length) {
        const i = next++;
        const inp = inputs[i]!;
        const pty = i % 5 === 0;
        let command = inp.argv.map(quote).join(' ');
        // Unquoted: the splitter sees the raw characters. The tail keeps such a line from ever being a
        // valid create (a repeated flag, or extra arguments after --, or inside an open quote).
        if (i % 7 === 0) command = `${inp.argv.join(' ')} --servers=0 --servers=0`;
        // SSH itself caps a packet at ~35,000 bytes (ssh2 drops the connection); kindler's own cap is 16,384 characters.
        const cut = Buffer.byteLength(command) > 30_000;
        if (cut) {
          let bytes = 0;
          command = [...command].filter((ch) => (bytes += Buffer.byteLength(ch)) <= 30_000).join('');
        }
        const res = await sshExec(c, command, { pty });
        const out = res.stdout.toString('utf8');
        const err = res.stderr.toString('utf8');
        const code = res.code ?? -1;
        const splitFails = cut || /[\0\r\n]/.test(command) || command.length > 16_384 || i % 7 === 0;
        const problem = judge(
          { ...inp, ...(splitFails ? { field: undefined, invalid: inp.invalid && i % 7 !== 0 } : {}) },
          code,
          out,
          err,
          pty ? '\n\t\r' : '\n\t',
        );
        let differs: string | null = null;
        if (!splitFails) {
          const local = await run(engine, inp.argv, sshActor, users);
          if (local.code !== code || local.err !== err.replace(/\r\n/g, '\n')) differs = `runCommand answered exit ${local.code} ${show(local.err)}`;
        }
        if (problem || differs)
          assert.fail(
            `seed ${SEED}, ssh input #${i}${pty ? ' (pty)' : ''}: ${problem ?? differs}\ncommand: ${show(command)}\nexit ${code}\nstdout: ${show(out)}\nstderr: ${show(err)}`,
          );
      }
    }),
  );
  assert.equal(
    stateKey(engine),
    before,
    `seed ${SEED}: no state change; tasks now: ${show(JSON.stringify(engine.store.data.tasks.slice(1).map((x) => [x.id, x.kind, x.cluster, x.user])))}`,
  );
});

test(`${FORM_N} key sequences through the create form: fields hold printable text only, every failed submit names its field`, async () => {
  const { engine } = await fixture();
  const r = prng(SEED ^ 0xf0a3);
  const before = stateKey(engine);
  for (let i = 0; i < FORM_N; i++) {
    const form = new CreateForm();
    const typed: string[] = [];
    for (let f = 0; f < CREATE_FIELDS.length; f++) {
      const spec = CREATE_FIELDS[f]!;
      if (spec.choices) {
        for (let n = r.int(4); n > 0; n--) form.key(r.pick(['left', 'right', 'space']), undefined, undefined);
      } else {
        const value = r.chance(0.3) ? '' : f === 0 && r.chance(0.3) ? validName(r) : junk(r, 30);
        typed.push(value);
        for (const ch of value) {
          // What blessed reports for a key: controls arrive with a name (or none), printables as themselves.
          const name = ch === '\x7f' || ch === '\b' ? 'backspace' : ch === '\t' || ch === '\r' || ch === '\n' || ch === '\x1b' ? 'ignored' : undefined;
          if (name === 'ignored') continue; // tab/enter/escape move, submit or cancel: covered on the screen
          const ctrl = ch.length === 1 && ch < ' ' && ch !== '\x7f';
          const key = { name: ctrl ? String.fromCharCode(ch.charCodeAt(0) + 96) : name, ctrl, sequence: ch, full: ch };
          form.key(keyId(ch, key), ch, key);
        }
      }
      form.key('tab', undefined, { name: 'tab' });
    }
    // Keep every form invalid (a valid one would start real work): an invalid name is checked last.
    if (nameIsValidAny(form.inputs[0]!.value.trim())) form.inputs[0]!.value += '_';
    for (const inp of form.inputs) {
      const bad = controlIn(inp.value, '');
      if (bad !== undefined) assert.fail(`seed ${SEED}, form #${i}: a field holds ${JSON.stringify(bad)} (typed ${show(JSON.stringify(typed))})`);
    }
    const argv = form.argv();
    const res = await run(engine, argv, ALICE);
    if (res.code === 0) {
      // A valid form: fine, but it started real work; fuzz inputs should rarely get here.
      assert.fail(`seed ${SEED}, form #${i}: a fuzzed form was valid: ${show(JSON.stringify(argv))}`);
    }
    const problem = judge({ argv, invalid: true }, res.code, res.out, res.err);
    if (problem) assert.fail(`seed ${SEED}, form #${i}: ${problem}\nargv: ${show(JSON.stringify(argv))}\nstderr: ${show(res.err)}`);
    const e = errorOf(verbErrorOf(res));
    form.fail(e.message, e.field);
    const lines = form.lines().join('\n');
    const bad = controlIn(lines, '\n');
    if (bad !== undefined) assert.fail(`seed ${SEED}, form #${i}: the form's lines hold ${JSON.stringify(bad)}`);
    assert.ok(lines.includes('error: '), 'the error is shown in the form');
    if (e.field && CREATE_FIELDS.some((f) => f.key === e.field)) assert.equal(CREATE_FIELDS[form.focus]!.key, e.field, 'the failing field gets the focus');
  }
  assert.equal(stateKey(engine), before, 'no state change');
});

test(`${TUI_N} create-form submissions in the real TUI: the error names the field on screen, nothing raw reaches the terminal, no state change`, async (t) => {
  const { engine } = await fixture();
  const backend = new LocalSession(engine, ALICE, 'fuzzhost');
  const cols = 120;
  const rows = 36;
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: true, setRawMode: () => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  const term = new xterm.Terminal({ cols, rows, allowProposedApi: true });
  let raw = '';
  const waiters = new Set<() => void>();
  output.on('data', (d: Buffer) => {
    raw += d.toString('utf8');
    term.write(d, () => {
      for (const f of [...waiters]) f();
    });
  });
  let exited: unknown;
  const tui = openTui({ input, output, columns: cols, rows, backend, onExit: (code, reason) => (exited = [code, reason]) });
  t.after(() => {
    tui.close();
    backend.close();
    term.dispose();
  });
  const screen = () => {
    const b = term.buffer.active;
    return Array.from({ length: term.rows }, (_, y) => b.getLine(b.viewportY + y)?.translateToString(true) ?? '').join('\n');
  };
  const waitFor = (ok: (s: string) => boolean, what: string, ms = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const s = screen();
        if (!ok(s)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(s);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`seed ${SEED}: timed out waiting for ${what}; screen:\n${screen()}`));
      }, ms);
      waiters.add(check);
      check();
    });
  await waitFor((s) => s.includes('base'), 'the table');
  const r = prng(SEED ^ 0x7e1);
  // Printable input only: control bytes are keys here (Ctrl-C quits, escape cancels); the form test
  // above covers them. Escape sequences are typed too, but only ones that cannot read as a bare escape.
  // The form drops C1 controls as it drops C0 ones (keys.ts typedChar), so they are left out here
  // too: "x" + U+009B would otherwise arrive as the valid name "x".
  const printable = (s: string) => [...s].filter((ch) => !/[\x00-\x1f\x7f-\x9f]/.test(ch)).join('');
  const before = stateKey(engine);
  for (let i = 0; i < TUI_N; i++) {
    const bad = r.pick(['name', 'agents', 'http-port', 'https-port', 'api-port', 'ttl']);
    const values: Record<string, string> = Object.fromEntries(CREATE_FIELDS.map((f) => [f.key, '']));
    values.name = validName(r);
    let v = printable(bad === 'name' ? junk(r, 40) : BAD[bad]!(r)).slice(0, 64);
    if (bad === 'name' && nameIsValidAny(v.trim())) v = `${v}_`;
    if (bad !== 'name' && v.trim() === '') v = 'x';
    if (bad === 'agents' && countOk(v.trim(), 0, 20)) v = '99';
    if (['http-port', 'https-port', 'api-port'].includes(bad) && portOk(v.trim())) v = '0';
    if (bad === 'ttl' && /^([0-9]{1,6}[smhd])+$/.test(v.trim())) v = '0s';
    values[bad] = v;
    const mark = raw.length;
    input.write('c');
    await waitFor((s) => s.includes('create a cluster'), 'the form');
    for (const f of CREATE_FIELDS) {
      if (f.choices) input.write(r.pick(['', '\x1b[C', '\x1b[D']));
      else input.write(values[f.key]!);
      input.write('\t');
    }
    input.write('\r');
    const s = await waitFor((x) => /error: /.test(x) && !x.includes('creating…'), `the error for ${bad} = ${show(v)}`);
    const line = s.split('\n').find((l) => l.includes('error: '))!;
    const named = /error: (--)?([a-z][\w-]*):/.exec(line)?.[2];
    if (named !== bad) assert.fail(`seed ${SEED}, tui #${i}: the error names ${named}, expected ${bad} (value ${show(v)}):\n${s}`);
    const row = CREATE_FIELDS.find((f) => f.key === bad)!;
    assert.match(s, new RegExp(`› ${row.label.replace(/ /g, '\\s')}:.*✗`), `seed ${SEED}, tui #${i}: the ${bad} row is focused and marked`);
    // What went to the terminal: blessed's own CSI sequences, and nothing else that is not text.
    const sent = raw
      .slice(mark)
      .replace(/\x1b\[[0-9;?>=]*[ -/]*[@-~]/g, '')
      .replace(/\x1b[()][0-9A-Za-z]/g, '')
      .replace(/\x1b[=>78]/g, '');
    const ctl = controlIn(sent, '\r\n\b');
    if (ctl !== undefined) assert.fail(`seed ${SEED}, tui #${i}: ${JSON.stringify(ctl)} reached the terminal (value ${show(v)})`);
    input.write('\x1b');
    await waitFor((x) => !x.includes('create a cluster'), 'the form to close');
    assert.equal(exited, undefined, 'the TUI is still open');
  }
  assert.equal(stateKey(engine), before, 'no state change');
});
