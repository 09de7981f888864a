/**
 * Tunnel figures (issue 14, section 1): `ssh -N -L` through kindler's SSH service to a cluster's API
 * port, against the same `ssh -L` through OpenSSH's sshd (when /usr/sbin/sshd exists; run on a
 * loopback port with its own config and host key). The daemon is a separate process (`kindler daemon`
 * from dist/, the fakes standing in for k3d/kubectl); the stand-in API is a plain TCP server in this
 * process on the cluster's API port (plain TCP, so the figures are the tunnel's, not TLS's).
 *
 * Measured, kindler and OpenSSH alternating so noise from other work on the machine hits both alike:
 * - set-up: spawn of `ssh -N -L` -> first byte echoed back through the tunnel (login included);
 * - throughput: TUNNEL_BENCH_MB (default 100) MB up (client -> API) and down (API -> client).
 * Every wait is on an event with a deadline; nothing sleeps. Run:
 *   node --expose-gc --import tsx --test --test-concurrency=1 test/stress/tunnel-bench.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, freePort, makeWorld, sshClientOpts, startDaemon } from '../helpers.js';

const MB = Number(process.env.TUNNEL_BENCH_MB ?? 100);
const SETUP_ROUNDS = Number(process.env.TUNNEL_BENCH_SETUPS ?? 10);
const XFER_ROUNDS = Number(process.env.TUNNEL_BENCH_XFERS ?? 3);
const SSHD = '/usr/sbin/sshd';
const note = (s: string) => process.stdout.write(`# ${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[], d = 0) => `${Math.min(...xs).toFixed(d)}-${Math.max(...xs).toFixed(d)}`;

/** Writes `bytes` bytes of `chunk` to `s` as fast as its buffer drains, then ends it and calls `done`. */
function pumpOut(s: Socket, chunk: Buffer, bytes: number, done: () => void = () => undefined): void {
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= c.length;
      if (!s.write(c)) return void s.once('drain', pump);
    }
    s.end();
    done();
  };
  pump();
}

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_r, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** The API stand-in: "E" echoes, "U" counts bytes until end and answers the count, "D<n>\n" sends n bytes. */
function standIn(port: number): Promise<{ close(): void }> {
  const socks = new Set<Socket>();
  const chunk = Buffer.alloc(256 * 1024, 120);
  const srv = createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    let mode = '';
    let n = 0;
    let head = '';
    s.on('data', (d: Buffer) => {
      if (!mode) mode = String.fromCharCode(d[0]!);
      if (mode === 'E') s.write(d);
      else if (mode === 'U') n += d.length;
      else if (mode === 'D' && !head.includes('\n')) {
        head += d.toString();
        if (!head.includes('\n')) return;
        pumpOut(s, chunk, Number(head.slice(1, head.indexOf('\n'))));
      }
    });
    s.on('end', () => {
      if (mode === 'U') s.end(`${n - 1}\n`);
    });
  });
  return new Promise((resolve) =>
    srv.listen(port, '127.0.0.1', () =>
      resolve({
        close: () => {
          for (const s of socks) s.destroy();
          srv.close();
        },
      }),
    ),
  );
}

const SSH_BASE = [...sshClientOpts(20), '-o', 'ExitOnForwardFailure=yes'];

/** Spawns `ssh -v -N -L 127.0.0.1:lp:dest`, resolves with the process once it listens. */
async function tunnel(key: string, user: string, port: number, dest: string): Promise<{ proc: ChildProcess; lp: number; t0: number }> {
  for (;;) {
    const lp = await freePort();
    const t0 = performance.now();
    const env = { ...process.env };
    delete env.SSH_AUTH_SOCK;
    const proc = spawn('ssh', [...SSH_BASE, '-v', '-i', key, '-p', String(port), '-N', '-L', `127.0.0.1:${lp}:${dest}`, `${user}@127.0.0.1`], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const ok = await deadline(
      new Promise<boolean>((resolve) => {
        proc.stderr.on('data', (d) => {
          err += d;
          if (err.includes(`Local forwarding listening on 127.0.0.1 port ${lp}`)) resolve(true);
        });
        proc.on('exit', () => resolve(false));
      }),
      30_000,
      `ssh -L to ${dest} did not listen:\n${err}`,
    );
    if (ok) return { proc, lp, t0 };
  }
}

/** Connects (retrying a refusal: the client announces its listener just before it accepts) and runs `fn`. */
async function connectLocal(lp: number): Promise<Socket> {
  // A deadline, not a count: 100 immediate retries can all fall inside the client's short gap.
  const deadline = Date.now() + 5000;
  for (let i = 0; ; i++) {
    const s = netConnect({ port: lp, host: '127.0.0.1' });
    s.setNoDelay(true);
    const r = await new Promise<Socket | null>((resolve) => {
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(null));
    });
    if (r) return r;
    if (Date.now() > deadline) throw new Error(`port ${lp} refused ${i + 1} connections over 5 s`);
    await new Promise((res) => setImmediate(res));
  }
}

async function setupOnce(key: string, user: string, port: number, dest: string): Promise<number> {
  const t = await tunnel(key, user, port, dest);
  try {
    const s = await connectLocal(t.lp);
    s.write('E!');
    await deadline(new Promise<void>((resolve) => s.once('data', () => resolve())), 20_000, 'echo through the tunnel');
    const ms = performance.now() - t.t0;
    s.destroy();
    return ms;
  } finally {
    t.proc.kill('SIGTERM');
  }
}

/** MB/s up and down through one tunnel. */
async function xferOnce(key: string, user: string, port: number, dest: string): Promise<{ up: number; down: number }> {
  const t = await tunnel(key, user, port, dest);
  const bytes = MB * 1024 * 1024;
  try {
    const up = await (async () => {
      const s = await connectLocal(t.lp);
      const chunk = Buffer.alloc(256 * 1024, 121);
      const t0 = performance.now();
      const done = new Promise<number>((resolve, reject) => {
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('end', () => resolve(Number(got.trim())));
        s.on('error', reject);
      });
      s.write('U');
      await new Promise<void>((resolve) => pumpOut(s, chunk, bytes, resolve));
      const n = await deadline(done, 300_000, 'upload');
      assert.equal(n, bytes, 'every byte arrived');
      return bytes / 1048576 / ((performance.now() - t0) / 1000);
    })();
    const down = await (async () => {
      const s = await connectLocal(t.lp);
      const t0 = performance.now();
      let n = 0;
      const done = new Promise<void>((resolve, reject) => {
        s.on('data', (d: Buffer) => (n += d.length));
        s.on('end', () => resolve());
        s.on('error', reject);
      });
      s.write(`D${bytes}\n`);
      await deadline(done, 300_000, 'download');
      assert.equal(n, bytes, 'every byte arrived');
      return bytes / 1048576 / ((performance.now() - t0) / 1000);
    })();
    return { up, down };
  } finally {
    t.proc.kill('SIGTERM');
  }
}

test(`tunnel set-up time and ${MB} MB throughput: kindler's ssh -L vs OpenSSH sshd`, { timeout: 1_800_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-bench-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'id');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  const sshPort = await freePort();
  const w = makeWorld({ ssh: { enabled: true, host: '127.0.0.1', port: sshPort, hostKeyFile: './keys/host_key', usersFile: './users.conf' } });
  writeFileSync(join(w.dir, 'users.conf'), `bench admin ${pub}\n`, { mode: 0o640 });
  t.after(() => w.dispose());
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const cr = await cli(w, ['create', 'dev', '--wait']);
  assert.equal(cr.code, 0, cr.stderr);
  const apiPort = (JSON.parse((await cli(w, ['show', 'dev', '--json'])).stdout) as { cluster: { apiPort: number } }).cluster.apiPort;
  const api = await standIn(apiPort);
  t.after(() => api.close());

  // OpenSSH's sshd on its own loopback port, forwarding to the same API port.
  let sshd: ChildProcess | undefined;
  let sshdPort = 0;
  if (existsSync(SSHD)) {
    const sd = join(dir, 'sshd');
    mkdirSync(sd);
    mkdirSync('/run/sshd', { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sd, 'host')]);
    writeFileSync(join(sd, 'authorized_keys'), `${pub}\n`, { mode: 0o600 });
    sshdPort = await freePort();
    writeFileSync(
      join(sd, 'config'),
      [
        `Port ${sshdPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(sd, 'host')}`,
        `PidFile ${join(sd, 'pid')}`,
        `AuthorizedKeysFile ${join(sd, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'AllowTcpForwarding yes',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    sshd = spawn(SSHD, ['-D', '-e', '-f', join(sd, 'config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    t.after(() => sshd?.kill('SIGTERM'));
    // Ready when it accepts a TCP connection and sends its banner.
    await deadline(
      (async () => {
        for (;;) {
          const s = netConnect({ port: sshdPort, host: '127.0.0.1' });
          const ok = await new Promise<boolean>((r) => {
            s.once('data', () => r(true));
            s.once('error', () => r(false));
          });
          s.destroy();
          if (ok) return;
          await new Promise((r) => setImmediate(r));
        }
      })(),
      20_000,
      'sshd to start',
    );
  } else note(`no ${SSHD}: OpenSSH figures skipped (apt-get install openssh-server)`);
  const user = process.env.USER ?? 'root';

  const setK: number[] = [];
  const setO: number[] = [];
  for (let i = 0; i < SETUP_ROUNDS; i++) {
    setK.push(await setupOnce(key, 'kindler', sshPort, 'dev:6443'));
    if (sshd) setO.push(await setupOnce(key, user, sshdPort, `127.0.0.1:${apiPort}`));
  }
  note(
    `set-up (ssh -L spawn -> first byte echoed), ${SETUP_ROUNDS} rounds: kindler median ${median(setK).toFixed(0)} ms (${range(setK)} ms)${sshd ? `; OpenSSH sshd median ${median(setO).toFixed(0)} ms (${range(setO)} ms)` : ''}`,
  );
  const upK: number[] = [];
  const downK: number[] = [];
  const upO: number[] = [];
  const downO: number[] = [];
  for (let i = 0; i < XFER_ROUNDS; i++) {
    const k = await xferOnce(key, 'kindler', sshPort, 'dev:6443');
    upK.push(k.up);
    downK.push(k.down);
    if (sshd) {
      const o = await xferOnce(key, user, sshdPort, `127.0.0.1:${apiPort}`);
      upO.push(o.up);
      downO.push(o.down);
    }
  }
  note(
    `throughput ${MB} MB, ${XFER_ROUNDS} rounds: kindler up median ${median(upK).toFixed(0)} MB/s (${range(upK)}), down ${median(downK).toFixed(0)} MB/s (${range(downK)})`,
  );
  if (sshd)
    note(
      `throughput ${MB} MB, ${XFER_ROUNDS} rounds: OpenSSH up median ${median(upO).toFixed(0)} MB/s (${range(upO)}), down ${median(downO).toFixed(0)} MB/s (${range(downO)})`,
    );
  const daemonRss = (() => {
    try {
      return /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))?.[1];
    } catch {
      return undefined;
    }
  })();
  if (daemonRss) note(`kindler daemon peak RSS during the run: ${(Number(daemonRss) / 1024).toFixed(0)} MB`);
});
