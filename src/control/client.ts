/**
 * The CLI side of the control socket: send one verb, relay output, return the exit code.
 */
import { connect } from 'node:net';
import { NdjsonReader, type RunRequest, type ServerMessage } from './protocol.js';

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
  out(s: string): void;
  err(s: string): void;
}

/** Runs the request on the daemon; resolves with the exit code. A dropped daemon is exit 1. */
export function runRemote(sock: import('node:net').Socket, req: RunRequest, io: RemoteIO): Promise<number> {
  return new Promise((resolve) => {
    let code: number | null = null;
    sock.setEncoding('utf8');
    const reader = new NdjsonReader((m) => {
      const msg = m as ServerMessage;
      if (msg.type === 'out') io.out(msg.data);
      else if (msg.type === 'err') io.err(msg.data);
      else if (msg.type === 'exit') code = msg.code;
    });
    sock.on('data', (c: string) => reader.push(c));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (code === null) io.err('error: the kindler daemon closed the connection before the command finished\n');
      resolve(code ?? 1);
    });
    sock.write(`${JSON.stringify(req)}\n`);
  });
}
