/**
 * Issue 18, the CLI items: help and version, doctor with docker down, tables that fit the terminal,
 * the pinned progress line of --wait, Ctrl-C of a --wait verb, privileged ports, shell completion.
 * Terminal behaviour is driven through a real pty (script(1)); every wait is on output with a deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, cli, ctl, makeTestKey, makeWorld, startDaemon, type World } from './helpers.js';

function world(t: import('node:test').TestContext, overrides: Record<string, unknown> = {}): World {
  const w = makeWorld(overrides);
  t.after(() => w.dispose());
  return w;
}

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

interface Live {
  out(): string;
  waitOut(re: RegExp, ms?: number): Promise<void>;
  kill(sig: NodeJS.Signals): void;
  done: Promise<{ code: number | null; out: string; err: string }>;
}

/** Runs the CLI as a process: in a pty of `cols` columns (script(1)) when `tty`, else on pipes. */
function run(w: World, args: string[], o: { tty?: { cols: number }; timeoutMs?: number; input?: string } = {}): Live {
  const argv = o.tty
    ? ([
        'script',
        ['-q', '-e', '-c', `stty cols ${o.tty.cols} rows 30; exec ${shq(process.execPath)} ${shq(CLI)} ${args.map(shq).join(' ')}`, '/dev/null'],
      ] as const)
    : ([process.execPath, [CLI, ...args]] as const);
  const p = spawn(argv[0], [...argv[1]], { env: w.env, cwd: w.dir, stdio: ['pipe', 'pipe', 'pipe'] });
  if (o.input !== undefined) p.stdin.end(o.input);
  let out = '';
  let err = '';
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const f of [...wakers]) f();
  };
  p.stdout.on('data', (d) => {
    out += d;
    wake();
  });
  p.stderr.on('data', (d) => {
    err += d;
    wake();
  });
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`kindler ${args.join(' ')} did not finish in time\nstdout: ${out}\nstderr: ${err}`));
    }, o.timeoutMs ?? 60_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      wake();
      resolve({ code, out, err });
    });
  });
  done.catch(() => undefined);
  const waitOut = (re: RegExp, ms = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!re.test(out)) return;
        wakers.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        wakers.delete(check);
        reject(new Error(`timed out waiting for ${re}; stdout:\n${out}\nstderr:\n${err}`));
      }, ms);
      wakers.add(check);
      check();
    });
  return { out: () => out, waitOut, kill: (sig) => p.kill(sig), done };
}

// ---- 9: help, version ---------------------------------------------------------------------------

test('help VERB, --version, daemon --help, --help and help work, without a daemon or the state lock; help is wrapped at 80 columns off a terminal', async (t) => {
  const w = world(t);
  const v = await cli(w, ['--version']);
  assert.deepEqual([v.code, v.stdout, v.stderr], [0, 'kindler 0.1.0\n', '']);
  const d = await cli(w, ['daemon', '--help']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^Run the kindler daemon in the foreground/);
  assert.match(d.stdout, /usage: kindler daemon\n/);
  for (const args of [['--help'], ['help'], ['-h'], []]) {
    const r = await cli(w, args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^kindler: local Kubernetes dev clusters/);
    assert.match(r.stdout, /\n {2}completion +Print a shell completion script/);
    assert.doesNotMatch(r.stdout, /__complete/, 'the completion helper is hidden');
  }
  const hd = await cli(w, ['help', 'daemon']);
  assert.equal(hd.stdout, d.stdout);
  const hc = await cli(w, ['help', 'create']);
  assert.equal(hc.code, 0, hc.stderr);
  assert.equal(hc.stdout, (await cli(w, ['create', '--help'])).stdout);
  // The description column wraps under its own indent: no line is wider than 80, and a long
  // description continues aligned with where it started.
  for (const l of hc.stdout.split('\n')) assert.ok(l.length <= 80, `too wide: ${l}`);
  const flagLines = hc.stdout.slice(hc.stdout.indexOf('flags:')).split('\n').slice(1).filter(Boolean);
  const col = flagLines[0]!.indexOf('provider (');
  assert.ok(col > 10, hc.stdout);
  for (const l of flagLines) {
    if (l.startsWith('  --')) assert.match(l.slice(col - 2, col), /^ {2}$/, `description starts at column ${col}: ${l}`);
    else assert.equal(l.length - l.trimStart().length, col, `continuation under the description: ${l}`);
  }
  const bad = await cli(w, ['help', 'nope']);
  assert.deepEqual([bad.code, bad.stdout, bad.stderr], [2, '', 'error: help: unknown verb "nope" (kindler help lists them)\n']);
  // A daemon answers the same (help does not depend on where verbs run).
  const dm = await startDaemon(w);
  t.after(() => dm.stop());
  assert.equal((await cli(w, ['help', 'create'])).stdout, hc.stdout);
  assert.equal((await cli(w, ['--version'])).stdout, 'kindler 0.1.0\n');
});

// ---- 9: doctor ----------------------------------------------------------------------------------

test('doctor with docker down: no version (JSON version absent), the error is in DETAIL/detail, the table stays narrow', async (t) => {
  const w = world(t);
  w.rule('docker-down', '');
  const j = await cli(w, ['doctor', '--json']);
  assert.equal(j.code, 1, j.stderr);
  const docker = JSON.parse(j.stdout).tools.find((x: { name: string }) => x.name === 'docker');
  assert.equal(docker.version ?? null, null, `version must be absent: ${JSON.stringify(docker)}`);
  assert.equal(docker.usable, false);
  assert.match(docker.detail, /the docker daemon is not reachable: .*Cannot connect to the Docker daemon/);
  const txt = await cli(w, ['doctor']);
  assert.equal(txt.code, 1);
  const row = txt.stdout.split('\n').find((l) => l.startsWith('docker'))!;
  const header = txt.stdout.split('\n')[0]!;
  assert.match(row, /^docker +yes +- +no +always +the docker daemon is not reachable/, row);
  assert.ok(header.indexOf('DETAIL') < 60, `the columns before DETAIL stay narrow: ${header}`);
});

// ---- 9: tables fit the terminal -----------------------------------------------------------------

test(
  'tasks fits the terminal width (cells cut with …, no row wraps); off a terminal nothing is cut',
  { skip: !has('script') && 'script(1) is not installed' },
  async (t) => {
    const w = world(t);
    w.rule('kubectl.wait', 'fail 1 the cluster never became ready, this reason is long enough to be wider than any terminal row');
    const d = await startDaemon(w);
    t.after(() => d.stop());
    const c = await cli(w, ['create', 'a-rather-long-cluster-name', '--wait']);
    assert.equal(c.code, 1);
    const tty = await run(w, ['tasks'], { tty: { cols: 70 } }).done;
    assert.equal(tty.code, 0, tty.err);
    const lines = tty.out.split(/\r?\n/).filter(Boolean);
    assert.equal(lines.length, 2, `header and one row, none wrapped:\n${tty.out}`);
    for (const l of lines) assert.ok([...l].length <= 70, `wider than 70: ${l}`);
    assert.match(lines[1]!, /…/);
    assert.match(lines[1]!, /^t-1 /);
    const pipe = await cli(w, ['tasks']);
    assert.equal(pipe.code, 0);
    assert.match(pipe.stdout, /this reason is long enough to be wider than any terminal row\n$/);
    assert.doesNotMatch(pipe.stdout, /…/);
  },
);

// ---- 8: --wait on a terminal, Ctrl-C ----------------------------------------------------------

test(
  'create --wait on a terminal keeps a progress line (spinner, bar, elapsed) pinned under the log; off a terminal plain lines',
  { skip: !has('script') && 'script(1) is not installed' },
  async (t) => {
    const w = world(t);
    const d = await startDaemon(w);
    t.after(() => d.stop());
    const r = await run(w, ['create', 'pinned', '--wait'], { tty: { cols: 100 } }).done;
    assert.equal(r.code, 0, r.out);
    const BAR = /[|/\\-] \[[#.]{30}\] +\d+% \d+:\d\d /;
    assert.match(r.out, BAR, 'the progress line has a spinner, the bar and the elapsed time');
    // After a log line the progress line is drawn again, below it (before the next log line).
    const afterFirst = r.out.slice(r.out.indexOf('==> [1/5]'));
    const next = afterFirst.indexOf('==> [2/5]');
    assert.ok(next > 0, r.out);
    assert.match(afterFirst.slice(0, next), BAR, `the line under the log is redrawn:\n${JSON.stringify(afterFirst.slice(0, next))}`);
    assert.match(r.out, /task t-1: create pinned succeeded/);
    // Off a terminal: plain step lines, no control sequences.
    const plain = await cli(w, ['create', 'plain', '--wait']);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /\[ {2}0%\] Check docker/);
    assert.doesNotMatch(plain.stdout, /\x1b|\r/);
  },
);

test('Ctrl-C of create --wait with a daemon: detached (the task continues, exit 130); --cancel-on-interrupt cancels it and waits', async (t) => {
  const w = world(t);
  w.rule('k3d.cluster-create', 'hang');
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const a = run(w, ['create', 'detach', '--wait']);
  await a.waitOut(/\[ {2}\d+%\] /);
  a.kill('SIGINT');
  const ra = await a.done;
  assert.equal(ra.code, 130, ra.err);
  assert.equal(ra.err, '\ndetached — t-1 continues; kindler logs t-1 --follow\n');
  const still = await ctl(w, ['task', 't-1', '--json']);
  assert.ok(['queued', 'running'].includes(JSON.parse(still.out).task.state), still.out);

  // The other --wait verbs behave the same (they share the follow); here with --cancel-on-interrupt.
  const b = run(w, ['create', 'cancelme', '--wait', '--cancel-on-interrupt']);
  await b.waitOut(/\[ {2}\d+%\] /);
  b.kill('SIGINT');
  const rb = await b.done;
  assert.equal(rb.code, 130, rb.err);
  assert.match(rb.err, /^\ninterrupted — cancelling t-2 /);
  assert.match(rb.out, /task t-2: create cancelme cancelled/);
  assert.equal(JSON.parse((await ctl(w, ['task', 't-2', '--json'])).out).task.state, 'cancelled');

  const c = run(w, ['cancel', 't-1', '--wait']);
  const rc = await c.done;
  assert.equal(rc.code, 1, `a cancelled task is not a success: ${rc.out}${rc.err}`);
  assert.equal(JSON.parse((await ctl(w, ['task', 't-1', '--json'])).out).task.state, 'cancelled');
});

// ---- 10: --key - ---------------------------------------------------------------------------------

test("users add --key - reads the key line from the CLI's standard input, through the daemon and embedded", async (t) => {
  const w = world(t);
  const bob = makeTestKey(w.dir, 'bob');
  const carl = makeTestKey(w.dir, 'carl');
  const emb = await run(w, ['users', 'add', 'bob', '--role', 'operator', '--key', '-'], { input: `${bob.pub}\n` }).done;
  assert.equal(emb.code, 0, emb.err);
  assert.doesNotMatch(emb.err, /error/);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const viaDaemon = await run(w, ['users', 'add-key', 'bob', '--key', '-'], { input: carl.pub }).done;
  assert.deepEqual([viaDaemon.code, viaDaemon.err], [0, ''], viaDaemon.out);
  const list = JSON.parse((await cli(w, ['users', 'list', '--json'])).stdout).users;
  assert.deepEqual(
    list.find((u: { name: string }) => u.name === 'bob').keys.map((k: { fingerprint: string }) => k.fingerprint),
    [bob.fp, carl.fp],
  );
});

// ---- 11: privileged ports -----------------------------------------------------------------------

test('create --http-port 80 exits 2 naming the rule (CLI)', async (t) => {
  const w = world(t);
  const r = await cli(w, ['create', 'x', '--http-port', '80']);
  assert.deepEqual([r.code, r.stdout, r.stderr], [2, '', 'error: http-port: must be a port number 1024-65535 (got "80")\n']);
  const j = await cli(w, ['create', 'x', '--https-port', '443', '--json']);
  assert.equal(j.code, 2);
  assert.equal(JSON.parse(j.stdout).error.field, 'https-port');
});

// ---- completion ---------------------------------------------------------------------------------

/** A `kindler` command on PATH that runs the built CLI in world `w`. */
function kindlerOnPath(w: World): NodeJS.ProcessEnv {
  const bin = join(w.dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'kindler'), `#!/bin/sh\nexec ${shq(process.execPath)} ${shq(CLI)} "$@"\n`);
  chmodSync(join(bin, 'kindler'), 0o755);
  return { ...w.env, PATH: `${bin}:${w.env.PATH}` };
}

/** What bash's completion gives for the words typed (the last one is being completed). */
function bashComplete(env: NodeJS.ProcessEnv, script: string, words: string[]): string[] {
  const prog = `${script}\nCOMP_WORDS=(${words.map(shq).join(' ')}); COMP_CWORD=${words.length - 1}; _kindler_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['--norc', '--noprofile', '-c', prog], { env, encoding: 'utf8' }).split('\n').filter(Boolean);
}

test('completion: bash, zsh and fish scripts are valid; bash completes verbs, flags per verb, values, cluster names and task ids', async (t) => {
  const w = world(t);
  const env = kindlerOnPath(w);
  const scripts: Record<string, string> = {};
  for (const sh of ['bash', 'zsh', 'fish']) {
    const r = await cli(w, ['completion', sh]);
    assert.equal(r.code, 0, r.stderr);
    scripts[sh] = r.stdout;
  }
  execFileSync('bash', ['-n'], { input: scripts.bash });
  if (has('zsh')) execFileSync('zsh', ['-n'], { input: scripts.zsh });
  else t.diagnostic('zsh is not installed: the zsh script was not syntax-checked');
  if (has('fish')) execFileSync('fish', ['--no-execute'], { input: scripts.fish });
  else t.diagnostic('fish is not installed: the fish script was not syntax-checked');
  const bad = await cli(w, ['completion', 'tcsh']);
  assert.deepEqual([bad.code, bad.stderr], [2, 'error: shell: must be one of bash, zsh, fish (got "tcsh")\n']);

  // Without a daemon: verbs and flags still complete; names are simply not offered, quietly.
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'cr']), ['create']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'delete', '']), []);

  const d = await startDaemon(w);
  t.after(() => d.stop());
  for (const n of ['alpha', 'beta']) assert.equal((await cli(w, ['create', n, '--wait'])).code, 0);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'cr']), ['create']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'delete', '']), ['alpha', 'beta']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'stop', 'b']), ['beta']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'cancel', 't-']), ['t-1', 't-2']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'logs', '']), ['alpha', 'beta', 't-1', 't-2']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'create', 'x', '--w']), ['--wait']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'create', 'x', '--provider', '']), ['k3d', 'kind']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'tasks', '--cluster', 'a']), ['alpha']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'users', 'set-']), ['set-role']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'help', 'da']), ['daemon']);
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'completion', '']), ['bash', 'fish', 'zsh']);
  // Every verb's flags come from the parser's table: list has only the common ones.
  assert.deepEqual(bashComplete(env, scripts.bash!, ['kindler', 'list', '--']), ['--help', '--json']);
});
