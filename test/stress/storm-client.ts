/**
 * The abusive viewer for resize-storm.test.ts, run as its own process (so that decrypting the
 * viewers' frames never delays the admin's measurements in the test process): opens N TUI sessions
 * at a huge size over SSH, waits until each has drawn, then sends window changes as fast as a timer
 * allows for a while, and stays connected until its stdin closes.
 *
 * Input: one JSON object in the STORM environment variable (see Plan); then, on stdin, a line `again`
 * for each further storm (stdin's end closes everything). Output, one line each: `ready`,
 * `storm-started`, `storm-ended <window changes sent>` (per storm), or `error <message>`.
 * Loopback only; every wait has a deadline.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';

interface Plan {
  port: number;
  hostFp: string;
  keyPath: string;
  sessions: number;
  /** The pty asked for at login. */
  cols: number;
  rows: number;
  /** How long the storm lasts, and how often a burst of window changes goes out. */
  stormMs: number;
  everyMs: number;
  burst: number;
}

const plan = JSON.parse(process.env.STORM ?? '{}') as Plan;
const say = (s: string) => process.stdout.write(`${s}\n`);

function open(): Promise<{ conn: InstanceType<typeof ssh2.Client>; ch: ClientChannel }> {
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    const timer = setTimeout(() => reject(new Error('no first frame within 60 s')), 60_000);
    conn.on('error', (e) => reject(e));
    conn.on('ready', () =>
      conn.shell({ term: 'xterm-256color', cols: plan.cols, rows: plan.rows, height: 0, width: 0 }, (e, ch) => {
        if (e) return reject(e);
        let tail = '';
        let drawn = false;
        ch.on('data', (b: Buffer) => {
          if (drawn) return;
          // The key hints are the last thing of the first full frame.
          tail = (tail + b.toString('latin1')).slice(-4096);
          if (tail.includes('quit')) {
            drawn = true;
            clearTimeout(timer);
            resolve({ conn, ch });
          }
        });
        ch.stderr.on('data', () => undefined);
      }),
    );
    conn.connect({
      host: '127.0.0.1',
      port: plan.port,
      username: 'kindler',
      privateKey: readFileSync(plan.keyPath),
      readyTimeout: 60_000,
      hostVerifier: (raw: Buffer) => `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}` === plan.hostFp,
    });
  });
}

async function main(): Promise<void> {
  const sessions = await Promise.all(Array.from({ length: plan.sessions }, () => open()));
  say('ready');
  // Every change is a real one: the huge size (drawn at the cap) and sizes just under the cap by turns.
  const sizes: [number, number][] = [[plan.cols, plan.rows]];
  for (let i = 1; i <= 9; i++) sizes.push([300 - i, 120 - i]);
  const storm = async () => {
    let sent = 0;
    const started = Date.now();
    say('storm-started');
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (Date.now() - started >= plan.stormMs) {
          clearInterval(timer);
          return resolve();
        }
        for (const { ch } of sessions) {
          for (let b = 0; b < plan.burst; b++) {
            const [c, r] = sizes[sent++ % sizes.length]!;
            ch.setWindow(r, c, 0, 0);
          }
        }
      }, plan.everyMs);
    });
    say(`storm-ended ${sent}`);
  };
  await storm();
  // Stay connected (the sessions keep their last size); `again` runs another storm.
  let buf = '';
  let running = Promise.resolve();
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line === 'again') running = running.then(storm);
    }
  });
  process.stdin.on('end', () => {
    for (const { conn } of sessions) conn.end();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

main().catch((e: unknown) => {
  say(`error ${(e as Error)?.message ?? e}`);
  process.exit(1);
});
