/**
 * The daemon's local control socket, `<dataDir>/kindler.sock` (owner and group only). Each
 * connection runs one verb through the same `runCommand` as every other face.
 *
 * Who the caller is comes from the kernel (SO_PEERCRED, see peercred.ts), never from the request:
 * the `user` a client sends is ignored. Every local caller is an admin, recorded (audit, cluster
 * owner, task user, presence) under its login name: reaching the socket at all takes the daemon's
 * uid, root, or membership in the socket's group, and granting that group is granting admin.
 */
import { chmodSync, lstatSync, unlinkSync, type Stats } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { UsersStore } from '../access/users.js';
import { whenDrained } from '../commands/io.js';
import type { Service } from '../commands/service.js';
import { SESSION_VERBS } from '../commands/session.js';
import { KindlerError } from '../core/errors.js';
import { sanitizeLine } from '../core/text.js';
import { errnoText } from '../os/atomic.js';
import type { EngineEventInput } from '../core/feed.js';
import { localName, loadPeerCred, peerCredOf } from './peercred.js';
import { NdjsonReader, type CallRequest, type RunRequest, type ServerMessage, type SubscribeRequest } from './protocol.js';

/**
 * Bytes a watching client may leave unread before log lines stop being queued for it. A client
 * that reads slower than a task logs (or not at all) would otherwise make the daemon buffer the
 * whole log for it; instead its log events are dropped and, once it has caught up, replaced by one
 * event holding the tail of each such task's log (the client sees the gap and starts over there).
 * Other events are small and always sent.
 */
export const CONTROL_BACKLOG = 1 << 20;

export function socketPath(dataDir: string): string {
  return join(dataDir, 'kindler.sock');
}

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

/**
 * Who a connection is, from its peer credentials; null (and the connection refused) when the kernel's
 * answer cannot be read. Every local caller is an admin (see the module comment).
 */
async function identify(sock: Socket, log: LogFn): Promise<string | null> {
  try {
    return await localName(peerCredOf(sock).uid);
  } catch (e) {
    log('warn', `control socket: connection refused: cannot read its peer credentials: ${sanitizeLine((e as Error).message)}`);
    return null;
  }
}

/**
 * Listens on the control socket. Call only while holding the state lock (the stale socket is removed).
 * Throws, before touching anything, when callers cannot be identified (the peer-credentials addon is missing).
 */
export async function startControlServer(service: Service, log: LogFn, users?: UsersStore): Promise<ControlServer> {
  loadPeerCred();
  const path = socketPath(service.cfg.dataDir);
  const cannot = (why: string) => new Error(`control socket: cannot listen on ${path}: ${why}`);
  let found: Stats | undefined;
  try {
    found = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw cannot(errnoText(e));
  }
  // A stale socket (a daemon that died) is removed; anything else in its place is not ours to remove.
  if (found && !found.isSocket())
    throw cannot(`it is ${found.isDirectory() ? 'a directory' : found.isSymbolicLink() ? 'a symlink' : 'a file'}, not a socket; remove it`);
  if (found) {
    try {
      unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw cannot(`the stale socket cannot be removed (${errnoText(e)})`);
    }
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.setEncoding('utf8');
    const abort = new AbortController();
    let started = false;
    const send = (m: ServerMessage) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(m)}\n`);
    };
    // Asked at once: the kernel recorded the peer when it connected.
    const caller = identify(sock, log);
    const reader = new NdjsonReader((m) => {
      if (started) return;
      started = true;
      void caller.then((user) => {
        // Gone while its name was looked up: nothing to serve (and no presence to leave behind).
        if (sock.destroyed) return;
        if (user === null) {
          send({ type: 'err', data: 'error: control socket: cannot tell who you are (peer credentials unreadable): refused\n' });
          send({ type: 'exit', code: 5 });
          sock.end();
          return;
        }
        serve(m, user);
      });
    });
    const serve = (m: unknown, user: string) => {
      const sub = m as SubscribeRequest;
      if (sub?.type === 'subscribe') {
        const leave = service.joinSession({ user, role: 'admin', source: 'local' });
        const behind = new Set<string>();
        // This connection numbers what it sends itself, on from the snapshot's seq: a client drops events not
        // newer than the last it applied, and the catch-up events below (made here, not by the feed) must each
        // be newer than everything sent before them. The feed's own gaps (log events skipped) do not matter.
        let seq = 0;
        const emit = (event: EngineEventInput) => send({ type: 'event', event: { ...event, seq: ++seq } });
        const { snapshot, unsubscribe } = service.subscribe((event) => {
          if (event.type === 'log' && (behind.has(event.taskId) || sock.writableLength > CONTROL_BACKLOG)) {
            behind.add(event.taskId);
            return;
          }
          emit(event);
        });
        seq = snapshot.seq;
        const catchUp = () => {
          for (const taskId of behind) {
            if (sock.writableLength > CONTROL_BACKLOG) return;
            behind.delete(taskId);
            const tail = service.liveLog(taskId);
            if (tail && tail.lines.length) emit({ type: 'log', taskId, from: tail.dropped, lines: tail.lines });
          }
        };
        sock.on('drain', catchUp);
        send({ type: 'snapshot', snapshot });
        sock.once('close', () => {
          unsubscribe();
          leave();
        });
        return;
      }
      const call = m as CallRequest;
      if (call?.type === 'call') {
        // A typed verb (kindler-tui): the same api, checks and audit as the TUI in the daemon has.
        const verb = typeof call.verb === 'string' && Object.hasOwn(SESSION_VERBS, call.verb) ? call.verb : null;
        const args = call.args === undefined || (call.args !== null && typeof call.args === 'object' && !Array.isArray(call.args)) ? call.args : null;
        const reply = (msg: ServerMessage) => {
          send(msg);
          sock.end();
        };
        if (!verb || args === null) return reply({ type: 'error', error: { kind: 'usage', message: 'malformed request' } });
        const api = service.api({ user, source: 'local-cli', role: 'admin' }, users);
        void (api[verb] as (a: unknown) => Promise<unknown>)(args).then(
          (value) => reply({ type: 'result', value }),
          (e: unknown) => {
            const err = e instanceof KindlerError ? e : new KindlerError('failed', `internal error: ${(e as Error)?.message ?? e}`);
            reply({ type: 'error', error: { kind: err.kind, message: sanitizeLine(err.message), ...(err.field ? { field: err.field } : {}) } });
          },
        );
        return;
      }
      const req = m as RunRequest;
      if (req?.type !== 'run' || !Array.isArray(req.argv) || !req.argv.every((a) => typeof a === 'string')) {
        send({ type: 'err', data: 'error: malformed request\n' });
        send({ type: 'exit', code: 2 });
        sock.end();
        return;
      }
      const files = req.files && typeof req.files === 'object' ? req.files : {};
      void service
        .run(req.argv, {
          actor: { user, source: 'local-cli', role: 'admin' },
          ...(users ? { users } : {}),
          io: {
            out: (data) => send({ type: 'out', data }),
            err: (data) => send({ type: 'err', data }),
            writable: () => whenDrained(sock),
            isTTY: Boolean(req.isTTY),
            columns: Number(req.columns) > 0 ? Number(req.columns) : 80,
            signal: abort.signal,
            readStdin: async () => (typeof req.stdin === 'string' ? req.stdin : ''),
            onTask: (id) => send({ type: 'task', id }),
            readFile: async (p) => {
              const text = files[p];
              if (typeof text !== 'string') throw Object.assign(new Error('not sent by the client'), { code: 'ENOENT' });
              return text;
            },
          },
        })
        .then((code) => {
          send({ type: 'exit', code });
          sock.end();
        });
    };
    sock.on('data', (chunk: string) => {
      try {
        reader.push(chunk);
      } catch (e) {
        log('warn', `control socket: bad request: ${sanitizeLine((e as Error).message)}`);
        sock.destroy();
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      sockets.delete(sock);
      abort.abort();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(cannot(errnoText(e))));
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o660);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.end();
        server.close(() => resolve());
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2000).unref();
      }),
  };
}
