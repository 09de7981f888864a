/**
 * 1,000 SSH connect → TUI → quit cycles against the real SSH server and TUI in this process: after a
 * forced garbage collection the heap returns to where it started, and nothing is left registered.
 * (Heap after GC, not RSS: RSS on this machine swings by tens of MB with no leak at all.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { UsersStore } from '../src/access/users.js';
import { loadOrCreateHostKey } from '../src/ssh/hostkey.js';
import { DEFAULT_SSH_LIMITS, startSshServer } from '../src/ssh/server.js';
import { Service } from '../src/commands/service.js';
import { makeWorld, startEngine } from './helpers.js';

const { Client } = ssh2;
const gc = (globalThis as { gc?: () => void }).gc;
const CYCLES = 1000;

test(
  `${CYCLES} SSH TUI sessions opened and quit: the heap after GC returns to where it started`,
  { skip: gc ? false : 'needs node --expose-gc (npm test passes it)', timeout: 240_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'kindler-mem-'));
    const w = makeWorld();
    const engine = await startEngine(w);
    const keyPath = join(dir, 'k');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
    writeFileSync(join(dir, 'users.conf'), `amy admin ${readFileSync(`${keyPath}.pub`, 'utf8').trim()}\n`);
    const users = new UsersStore({ file: join(dir, 'users.conf') });
    users.load();
    const srv = await startSshServer({
      service: new Service(engine),
      users,
      hostKey: loadOrCreateHostKey(join(dir, 'host')),
      host: '127.0.0.1',
      port: 0,
      log: () => undefined,
      limits: { ...DEFAULT_SSH_LIMITS, maxSessionsPerUser: 16 },
      hostName: 'memtest',
    });
    t.after(async () => {
      await srv.stop();
      await engine.shutdown();
      w.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });
    const privateKey = readFileSync(keyPath);

    /** One session: connect, wait for the first frame, press q, wait for the channel to close. */
    const cycle = () =>
      new Promise<void>((resolve, reject) => {
        const c = new Client();
        const timer = setTimeout(() => {
          c.destroy();
          reject(new Error('a session did not open and close within 15 s'));
        }, 15_000);
        c.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        c.on('ready', () =>
          c.shell({ term: 'xterm-256color', cols: 100, rows: 30 }, (err, s) => {
            if (err) return reject(err);
            let seen = '';
            s.on('data', (d: Buffer) => {
              if (seen.length < 4096) seen += d.toString('latin1');
              if (seen.includes('clusters')) {
                seen = 'x'.repeat(4096);
                s.write('q');
              }
            });
            s.on('close', () => {
              clearTimeout(timer);
              c.end();
              resolve();
            });
          }),
        );
        c.connect({ host: '127.0.0.1', port: srv.port, username: 'kindler', privateKey, readyTimeout: 10_000 });
      });
    const run = async (n: number, lanes = 4) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: lanes }, async () => {
          while (next < n) {
            next++;
            await cycle();
          }
        }),
      );
    };
    const heap = async () => {
      for (let i = 0; i < 3; i++) {
        gc!();
        await new Promise((r) => setImmediate(r));
      }
      return process.memoryUsage().heapUsed / 1048576;
    };
    // The server's own subscriptions (the tunnels watch for deleted clusters) are not per session.
    const serverSubs = engine.feed.size;
    await run(50); // warm-up: JIT, module caches, terminfo
    const before = await heap();
    const t0 = Date.now();
    await run(CYCLES);
    const ms = Date.now() - t0;
    await new Promise((r) => setImmediate(r));
    const after = await heap();
    console.log(
      `heap after GC: ${before.toFixed(1)} MB before, ${after.toFixed(1)} MB after ${CYCLES} sessions (${(after - before).toFixed(1)} MB), ${(ms / CYCLES).toFixed(1)} ms per session`,
    );
    assert.equal(srv.sessions(), 0, 'no session left open');
    assert.equal(engine.feed.size, serverSubs, 'no session subscription left');
    assert.equal(engine.snapshot().sessions.length, 0, 'nobody left online');
    assert.ok(after - before < 6, `heap grew by ${(after - before).toFixed(1)} MB over ${CYCLES} sessions`);
  },
);
