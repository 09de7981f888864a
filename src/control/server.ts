/**
 * The daemon's local control socket, `<dataDir>/kindler.sock` (owner and group only). Each
 * connection runs one verb through the same `runCommand` as every other face.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { UsersStore } from '../access/users.js';
import { runCommand } from '../commands/index.js';
import { whenDrained } from '../commands/io.js';
import { sanitizeLine } from '../core/text.js';
import type { Engine, LogFn } from '../engine/engine.js';
import { NdjsonReader, type RunRequest, type ServerMessage, type SubscribeRequest } from './protocol.js';

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

export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

/** Listens on the control socket. Call only while holding the state lock (the stale socket is removed). */
export async function startControlServer(engine: Engine, log: LogFn, users?: UsersStore): Promise<ControlServer> {
  const path = socketPath(engine.cfg.dataDir);
  try {
    unlinkSync(path);
  } catch { /* none left */ }
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.setEncoding('utf8');
    const abort = new AbortController();
    let started = false;
    const send = (m: ServerMessage) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(m)}\n`);
    };
    const reader = new NdjsonReader((m) => {
      if (started) return;
      started = true;
      const sub = m as SubscribeRequest;
      if (sub?.type === 'subscribe') {
        const user = typeof sub.user === 'string' && /^[a-z_][a-z0-9_.-]{0,31}$/i.test(sub.user) ? sub.user : 'unknown';
        const leave = engine.joinSession({ user, role: 'admin', source: 'local' });
        const behind = new Set<string>();
        const { snapshot, unsubscribe } = engine.subscribe((event) => {
          if (event.type === 'log' && (behind.has(event.taskId) || sock.writableLength > CONTROL_BACKLOG)) {
            behind.add(event.taskId);
            return;
          }
          send({ type: 'event', event });
        });
        const catchUp = () => {
          for (const taskId of behind) {
            if (sock.writableLength > CONTROL_BACKLOG) return;
            behind.delete(taskId);
            const tail = engine.liveLog(taskId);
            // Every non-log event up to lastSeq was sent: half a step orders this one after them and
            // before the next real event (a client drops events not newer than the last it applied).
            if (tail && tail.lines.length) send({ type: 'event', event: { seq: engine.feed.lastSeq + 0.5, type: 'log', taskId, from: tail.dropped, lines: tail.lines } });
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
      const req = m as RunRequest;
      if (req?.type !== 'run' || !Array.isArray(req.argv) || !req.argv.every((a) => typeof a === 'string')) {
        send({ type: 'err', data: 'error: malformed request\n' });
        send({ type: 'exit', code: 2 });
        sock.end();
        return;
      }
      const user = typeof req.user === 'string' && /^[a-z_][a-z0-9_.-]{0,31}$/i.test(req.user) ? req.user : 'unknown';
      const files = req.files && typeof req.files === 'object' ? req.files : {};
      void runCommand(req.argv, {
        engine,
        actor: { user, source: 'local-cli', role: 'admin' },
        ...(users ? { users } : {}),
        io: {
          out: (data) => send({ type: 'out', data }),
          err: (data) => send({ type: 'err', data }),
          writable: () => whenDrained(sock),
          isTTY: Boolean(req.isTTY),
          columns: Number(req.columns) > 0 ? Number(req.columns) : 80,
          signal: abort.signal,
          readFile: async (p) => {
            const text = files[p];
            if (typeof text !== 'string') throw Object.assign(new Error('not sent by the client'), { code: 'ENOENT' });
            return text;
          },
        },
      }).then((code) => {
        send({ type: 'exit', code });
        sock.end();
      });
    });
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
    server.once('error', reject);
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
