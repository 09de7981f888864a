/**
 * The local control socket's protocol: newline-delimited JSON, one request per connection.
 *   run:       client -> { type: 'run', argv, user, isTTY, columns, files }   (closing aborts the verb)
 *              daemon -> { type: 'out' | 'err', data } | { type: 'task', id } ... then { type: 'exit', code }
 *   subscribe: client -> { type: 'subscribe', user }
 *              daemon -> { type: 'snapshot', snapshot } then { type: 'event', event } ... until closed
 *   call:      client -> { type: 'call', verb, args }   (a typed verb of the session api: kindler-tui)
 *              daemon -> { type: 'result', value } | { type: 'error', error: { kind, message, field? } }
 *
 * `user` is informational only and ignored by the daemon: it takes the caller from the kernel
 * (SO_PEERCRED, see peercred.ts).
 */
import type { SessionApi } from '../commands/session.js';
import type { ErrorKind } from '../core/errors.js';
import type { EngineEvent, Snapshot } from '../core/feed.js';

export interface RunRequest {
  type: 'run';
  argv: string[];
  /** Ignored by the daemon (the caller comes from the kernel); kept so older clients still fit. */
  user?: string;
  isTTY: boolean;
  columns: number;
  /** Contents of files named on the command line, read by the client (path -> text). */
  files: Record<string, string>;
  /** What the client read from its standard input, when the verb reads it (`--key -`). */
  stdin?: string;
}

/** Watch the engine: the daemon answers with a snapshot, then every event, until the client closes. */
export interface SubscribeRequest {
  type: 'subscribe';
  /** Ignored by the daemon, as in RunRequest. */
  user?: string;
}

/** One typed verb of the session api, with its arguments (the daemon checks both, as every face's). */
export interface CallRequest {
  type: 'call';
  verb: keyof SessionApi;
  args?: unknown;
}

export type ServerMessage =
  /** A call's result, as the session api returns it. */
  | { type: 'result'; value: unknown }
  /** A call's failure: the KindlerError it threw. */
  | { type: 'error'; error: { kind: ErrorKind; message: string; field?: string } }
  | { type: 'out'; data: string }
  | { type: 'err'; data: string }
  | { type: 'exit'; code: number }
  /** The task a --wait verb follows (so the client's Ctrl-C can name or cancel it). */
  | { type: 'task'; id: string }
  | { type: 'snapshot'; snapshot: Snapshot }
  | { type: 'event'; event: EngineEvent };

/** Splits a stream of NDJSON into parsed messages; a bad line or an oversized message is an error. */
export class NdjsonReader {
  private buf = '';
  constructor(
    private readonly onMessage: (m: unknown) => void,
    private readonly maxBytes = 64 << 20,
  ) {}
  push(chunk: string): void {
    this.buf += chunk;
    if (this.buf.length > this.maxBytes) throw new Error('message too large');
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      if (line.trim()) this.onMessage(JSON.parse(line));
    }
  }
}
