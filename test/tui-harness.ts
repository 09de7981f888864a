/**
 * The harness of the SSH TUI screen tests (ssh-tui.test.ts, ssh-tui-ux.test.ts): ed25519 test keys,
 * ssh2 clients pinned to the daemon's host key fingerprint, one verb over ssh2 (`exec`), and SSH TUI
 * sessions (`connectTui`) rendered into a headless xterm whose visible grid the tests read.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';
import xterm from '@xterm/headless';
import unicode11 from '@xterm/addon-unicode11';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cli, makeWorld, startDaemon, type Daemon, type World } from './helpers.js';

const { Client } = ssh2;
const { Terminal } = xterm;
const { Unicode11Addon } = unicode11;

export type Key = { path: string; pub: string; priv: Buffer };

/** A directory for test keys (the caller removes `dir` after its tests) and a maker of ed25519 keys in it. */
export function makeKeys(): { dir: string; key: (name: string) => Key } {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-ssh-tui-keys-'));
  return {
    dir,
    key(name: string): Key {
      const path = join(dir, name);
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', path]);
      return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim(), priv: readFileSync(path) };
    },
  };
}

export type Pred = string | RegExp | ((screen: string) => boolean);

/** One SSH TUI session rendered into a headless terminal. */
export interface Tui {
  label: string;
  /** The visible grid, one string per row (trailing blanks trimmed). */
  lines(): string[];
  screen(): string;
  footer(): string;
  /** Whether any visible row is a soft-wrapped continuation (output wider than the terminal). */
  anyWrapped(): boolean;
  waitFor(what: Pred, ms?: number): Promise<string>;
  send(s: string): void;
  resize(cols: number, rows: number): void;
  /** Sends a window change only (the headless terminal keeps its size). */
  setWindow(cols: number, rows: number): void;
  /** Screen clears received so far (`ESC[2J`: blessed clears the terminal on each reflow to a new size). */
  clears(): number;
  /** One cell of the visible grid: its characters, width and whether it is in reverse video / coloured. */
  cell(x: number, y: number): { chars: string; width: number; inverse: boolean; coloured: boolean; bold: boolean; fg: number } | undefined;
  /** Resolves when the channel closes, with the exit-status the server sent. */
  closed: Promise<{ code: number | null }>;
  close(): Promise<void>;
}

function describe(what: Pred): string {
  return typeof what === 'function' ? (what.name || what.toString()).slice(0, 200) : String(what);
}

export interface SshHarnessOptions {
  /** The daemon's SSH port (read when a client connects: it is known only after the daemon started). */
  port: () => number;
  /** The host key fingerprint (SHA256:…) the daemon logged, pinned by every client. */
  hostFp: () => string;
  /** Measure characters with Unicode 11 widths (emoji: 2 columns) instead of xterm.js's Unicode 6 tables. */
  unicode11?: boolean;
}

/** The ssh2 client side of the screen tests, against the daemon `opts` points at. */
export function sshHarness(opts: SshHarnessOptions) {
  const connectOpts = (k: Key) => ({
    host: '127.0.0.1',
    port: opts.port(),
    username: 'kindler',
    privateKey: k.priv,
    readyTimeout: 15_000,
    hostVerifier: (raw: Buffer) => `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}` === opts.hostFp(),
  });

  /** One verb over ssh2 (exec, no pty). */
  function exec(k: Key, argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const conn = new Client();
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      const timer = setTimeout(() => {
        conn.end();
        reject(new Error(`exec ${argv.join(' ')} did not finish in 30 s`));
      }, 30_000);
      conn.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      conn.on('ready', () =>
        conn.exec(argv.join(' '), (e, ch) => {
          if (e) return reject(e);
          ch.on('data', (b: Buffer) => (stdout += b.toString()));
          ch.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
          ch.on('exit', (c: number | null) => (code = c));
          ch.on('close', () => {
            clearTimeout(timer);
            conn.end();
            resolve({ code, stdout, stderr });
          });
        }),
      );
      conn.connect(connectOpts(k));
    });
  }

  /** Connects, opens a shell with a pty and pipes it into a headless xterm. */
  function connectTui(k: Key, label: string, cols = 120, rows = 40, command?: string): Promise<Tui> {
    return new Promise((resolve, reject) => {
      const conn = new Client();
      const term = new Terminal({ cols, rows, allowProposedApi: true, scrollback: 0 });
      if (opts.unicode11) {
        term.loadAddon(new Unicode11Addon());
        term.unicode.activeVersion = '11';
      }
      const waiters = new Set<() => void>();
      const notify = () => {
        for (const f of [...waiters]) f();
      };
      let stream: ClientChannel | null = null;
      let exitCode: number | null = null;
      let chClosed = false;
      let connClosed = false;
      let onClosed!: (v: { code: number | null }) => void;
      const closed = new Promise<{ code: number | null }>((r) => (onClosed = r));
      const connGone = new Promise<void>((r) =>
        conn.once('close', () => {
          connClosed = true;
          r();
        }),
      );
      let disposed = false;
      let clears = 0;
      let tail = '';

      const lines = () => {
        const b = term.buffer.active;
        return Array.from({ length: term.rows }, (_, y) => b.getLine(b.viewportY + y)?.translateToString(true) ?? '');
      };
      const screen = () => lines().join('\n');
      const tui: Tui = {
        label,
        lines,
        screen,
        footer: () => lines().at(-1) ?? '',
        anyWrapped: () => {
          const b = term.buffer.active;
          return Array.from({ length: term.rows }, (_, y) => b.getLine(b.viewportY + y)?.isWrapped ?? false).some(Boolean);
        },
        waitFor: (what, ms = 10_000) =>
          new Promise<string>((res, rej) => {
            const ok = (s: string) => (typeof what === 'string' ? s.includes(what) : what instanceof RegExp ? what.test(s) : what(s));
            const done = () => {
              waiters.delete(check);
              clearTimeout(timer);
            };
            const check = () => {
              const s = screen();
              if (ok(s)) {
                done();
                res(s);
              } else if (chClosed) {
                done();
                rej(new Error(`[${label}] the session closed (exit ${exitCode}) before ${describe(what)} appeared; screen:\n${s}`));
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              rej(new Error(`[${label}] timed out after ${ms} ms waiting for ${describe(what)}; screen (${term.cols}x${term.rows}):\n${screen()}`));
            }, ms);
            waiters.add(check);
            check();
          }),
        send: (s) => void stream?.write(s),
        resize: (c, r) => {
          term.resize(c, r);
          stream?.setWindow(r, c, 0, 0);
        },
        setWindow: (c, r) => void stream?.setWindow(r, c, 0, 0),
        clears: () => clears,
        cell: (x, y) => {
          const b = term.buffer.active;
          const c = b.getLine(b.viewportY + y)?.getCell(x);
          if (!c) return undefined;
          return {
            chars: c.getChars(),
            width: c.getWidth(),
            inverse: c.isInverse() !== 0,
            coloured: !c.isFgDefault() || !c.isBgDefault(),
            bold: c.isBold() !== 0,
            fg: c.isFgDefault() ? -1 : c.getFgColor(),
          };
        },
        closed,
        close: async () => {
          if (!connClosed) {
            conn.end();
            await Promise.race([connGone, new Promise((r) => setTimeout(r, 3000))]);
          }
          if (!disposed) {
            disposed = true;
            term.dispose();
          }
        },
      };
      conn.on('error', (e) => {
        if (!stream) reject(e);
      });
      const pty = { term: 'xterm-256color', cols, rows, height: 0, width: 0 };
      conn.on('ready', () => {
        const go = (e: Error | undefined, s: ClientChannel) => {
          if (e) {
            conn.end();
            return reject(e);
          }
          stream = s;
          s.on('data', (b: Buffer) => {
            const text = tail + b.toString('latin1');
            clears += text.split('\x1b[2J').length - 1;
            tail = text.slice(-3).replace(/^.*\x1b\[2J/s, '');
            if (!disposed) term.write(b, notify);
          });
          s.stderr.on('data', (b: Buffer) => {
            if (!disposed) term.write(b, notify);
          });
          s.on('exit', (c: number | null) => (exitCode = c));
          s.on('close', () => {
            chClosed = true;
            onClosed({ code: exitCode });
            // Let the last bytes be parsed before failing waiters.
            if (!disposed) term.write('', notify);
            conn.end();
          });
          resolve(tui);
        };
        if (command) conn.exec(command, { pty }, go);
        else conn.shell(pty, go);
      });
      conn.connect(connectOpts(k));
    });
  }

  return { connectOpts, exec, connectTui };
}

/**
 * Registers the suite's before/after hooks: one real daemon with SSH on 127.0.0.1 (port chosen by the
 * kernel) whose first admin is `admin`, with `olga` (operator, key `oper`) and `vera` (viewer, key `view`)
 * added over SSH; after the tests the daemon stops and the world and keys are removed. `ready` gets the
 * world and daemon once they are up (read them there: a test file's own root `before` hook does not wait
 * for this one). `daemonLog`: write the daemon's output to $KINDLER_TEST_DAEMON_LOG (for a failed run).
 */
export function sshTuiSuite(o: { unicode11?: boolean; daemonLog?: boolean; ready?: (s: { w: World; d: Daemon }) => void } = {}) {
  const keys = makeKeys();
  let port = 0;
  let hostFp = '';
  const harness = sshHarness({ port: () => port, hostFp: () => hostFp, unicode11: o.unicode11 });
  const suite = {
    ...harness,
    /** Makes one more key (removed with the others after the tests). */
    key: keys.key,
    admin: keys.key('admin'),
    oper: keys.key('oper'),
    view: keys.key('view'),
    w: undefined as unknown as World,
    d: undefined as unknown as Daemon,
  };
  before(async () => {
    const w = (suite.w = makeWorld({ ssh: { enabled: true, host: '127.0.0.1', port: 0, hostKeyFile: './keys/host', usersFile: './users.conf' } }));
    w.env.KINDLER_INITIAL_ADMIN_KEYS = suite.admin.pub;
    const d = (suite.d = await startDaemon(w));
    await d.waitFor(/ssh listening on 127\.0\.0\.1:\d+/);
    port = Number(/ssh listening on 127\.0\.0\.1:(\d+)/.exec(d.output())![1]);
    hostFp = /ssh host key .*: (SHA256:[A-Za-z0-9+/]{43})/.exec(d.output())![1]!;
    for (const [name, role, k] of [
      ['olga', 'operator', suite.oper],
      ['vera', 'viewer', suite.view],
    ] as const) {
      const r = await harness.exec(suite.admin, ['users', 'add', name, '--role', role, '--key', `"${k.pub}"`]);
      assert.equal(r.code, 0, r.stderr);
    }
    o.ready?.(suite);
  });
  after(async () => {
    const { w, d } = suite;
    if (o.daemonLog && process.env.KINDLER_TEST_DAEMON_LOG && d) writeFileSync(process.env.KINDLER_TEST_DAEMON_LOG, d.output());
    await d?.stop();
    w?.cleanup();
    rmSync(keys.dir, { recursive: true, force: true });
  });
  return suite;
}

const DELAY_RULE = 'k3d.cluster-create';

/** Creates a cluster from the local CLI in `w` whose create step takes `seconds`; returns the task id. */
export async function slowCreateIn(w: World, t: { after(fn: () => unknown): void }, name: string, seconds: number): Promise<string> {
  w.rule(DELAY_RULE, `delay ${seconds}`);
  t.after(() => w.clearRule(DELAY_RULE));
  const r = await cli(w, ['create', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).task.id as string;
}

export const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A task line in the tasks panel: id, percent, user and step. */
export function taskLine(screen: string, name: string): { id: string; pct: number; user: string; step: string } | null {
  const m = new RegExp(`(t-\\d+)\\s+create\\s+${esc(name)}\\s+[█░]+\\s+(\\d+)%\\s+\\S+\\s+(\\S+)\\s+(.*?)\\s*│`).exec(screen);
  return m ? { id: m[1]!, pct: Number(m[2]), user: m[3]!, step: m[4]! } : null;
}

/** Re-checks an async condition (a CLI call) until a deadline. */
export async function eventually(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
