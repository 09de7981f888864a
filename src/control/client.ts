/**
 * The CLI side of the control socket: send one verb, relay output, return the exit code.
 */
import { connect } from 'node:net';
import { authorize, type Action } from '../access/authorize.js';
import type { Principal } from '../commands/index.js';
import { SESSION_VERBS, type SessionApi, type SessionBackend, type VerbResult } from '../commands/session.js';
import { KindlerError } from '../core/errors.js';
import type { EngineEvent, Snapshot } from '../core/feed.js';
import { NdjsonReader, type CallRequest, type RunRequest, type ServerMessage } from './protocol.js';

/** Connects, or resolves null when no daemon listens (no socket file, or nobody behind it). */
export function tryConnect(path: string): Promise<import('node:net').Socket | null> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') resolve(null);
      else reject(new Error(`control socket ${path}: ${e.code ?? e.message}`));
    });
  });
}

export interface RemoteIO {
  /** Writes output; `false` means it is backed up (as a stream's `write` says). */
  out(s: string): unknown;
  err(s: string): void;
  /** After `out` said false: resolves when the output has room; the socket is not read meanwhile, so the daemon waits too. */
  writable?(): Promise<void>;
  /** Told the id of the task a --wait verb follows. */
  onTask?(id: string): void;
  /** True when the client closed the connection itself (Ctrl-C): no "closed the connection" error then. */
  closedByUs?(): boolean;
}

/** Runs the request on the daemon; resolves with the exit code. A dropped daemon is exit 1. */
export function runRemote(sock: import('node:net').Socket, req: RunRequest, io: RemoteIO): Promise<number> {
  return new Promise((resolve) => {
    let code: number | null = null;
    let full = false;
    sock.setEncoding('utf8');
    const reader = new NdjsonReader((m) => {
      const msg = m as ServerMessage;
      if (msg.type === 'out') {
        if (io.out(msg.data) === false) full = true;
      } else if (msg.type === 'err') io.err(msg.data);
      else if (msg.type === 'exit') code = msg.code;
      else if (msg.type === 'task') io.onTask?.(msg.id);
    });
    sock.on('data', (c: string) => {
      reader.push(c);
      if (full && io.writable) {
        full = false;
        sock.pause();
        void io.writable().then(() => sock.resume());
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (code === null && !io.closedByUs?.()) io.err('error: the kindler daemon closed the connection before the command finished\n');
      resolve(code ?? 1);
    });
    sock.write(`${JSON.stringify(req)}\n`);
  });
}

/** A TUI session backed by a running daemon: watches over one connection, runs each verb over its own. */
export class RemoteSession implements SessionBackend {
  readonly principal: Principal;
  private readonly socks = new Set<import('node:net').Socket>();
  /** The typed verbs, each a `call` message over its own connection: a result, or the KindlerError the daemon threw. */
  readonly api: SessionApi = Object.fromEntries(
    Object.keys(SESSION_VERBS).map((verb) => [verb, (args?: unknown) => this.call(verb as keyof SessionApi, args)]),
  ) as unknown as SessionApi;

  constructor(
    private readonly path: string,
    user: string,
    readonly host: string,
  ) {
    this.principal = { user, source: 'local', role: 'admin' };
  }

  async subscribe(listener: (e: EngineEvent) => void): Promise<{ snapshot: Snapshot; unsubscribe: () => void }> {
    const sock = await tryConnect(this.path);
    if (!sock) throw new Error('the kindler daemon is not running');
    this.socks.add(sock);
    sock.setEncoding('utf8');
    return new Promise((resolve, reject) => {
      let snapshot: Snapshot | null = null;
      const reader = new NdjsonReader((m) => {
        const msg = m as ServerMessage;
        if (msg.type === 'snapshot') {
          snapshot = msg.snapshot;
          resolve({
            snapshot,
            unsubscribe: () => {
              sock.destroy();
              this.socks.delete(sock);
            },
          });
        } else if (msg.type === 'event') listener(msg.event);
      });
      sock.on('data', (c: string) => reader.push(c));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        if (!snapshot) reject(new Error('the kindler daemon closed the connection'));
      });
      sock.write(`${JSON.stringify({ type: 'subscribe', user: this.principal.user })}\n`);
    });
  }

  async run(argv: string[]): Promise<VerbResult> {
    const sock = await tryConnect(this.path);
    if (!sock) return { code: 1, out: '', err: 'error: the kindler daemon is not running\n' };
    this.socks.add(sock);
    let out = '';
    let err = '';
    const code = await runRemote(
      sock,
      { type: 'run', argv, user: this.principal.user, isTTY: false, columns: 120, files: {} },
      { out: (s) => void (out += s), err: (s) => void (err += s) },
    );
    this.socks.delete(sock);
    return { code, out, err };
  }

  private async call(verb: keyof SessionApi, args: unknown): Promise<unknown> {
    const sock = await tryConnect(this.path);
    if (!sock) throw new KindlerError('failed', 'the kindler daemon is not running');
    this.socks.add(sock);
    sock.setEncoding('utf8');
    try {
      return await new Promise((resolve, reject) => {
        let answered = false;
        const reader = new NdjsonReader((m) => {
          const msg = m as ServerMessage;
          if (msg.type === 'result') {
            answered = true;
            resolve(msg.value);
          } else if (msg.type === 'error') {
            answered = true;
            reject(new KindlerError(msg.error.kind, msg.error.message, msg.error.field));
          }
        });
        sock.on('data', (c: string) => {
          try {
            reader.push(c);
          } catch (e) {
            answered = true;
            reject(new KindlerError('failed', `unreadable reply from ${verb}: ${(e as Error).message}`));
            sock.destroy();
          }
        });
        sock.on('error', () => undefined);
        sock.on('close', () => {
          if (!answered) reject(new KindlerError('failed', 'the kindler daemon closed the connection before the command finished'));
        });
        const req: CallRequest = { type: 'call', verb, ...(args !== undefined ? { args } : {}) };
        sock.write(`${JSON.stringify(req)}\n`);
      });
    } finally {
      this.socks.delete(sock);
      sock.destroy();
    }
  }

  may(action: Action, owner?: string, taskUser?: string): boolean {
    return authorize(this.principal, action, { owner, taskUser }).ok;
  }

  close(): void {
    for (const s of this.socks) s.destroy();
    this.socks.clear();
  }
}
