/**
 * A SessionApi over argv: each typed call runs as the verb's `--json` argv through `run` (a face that
 * only carries argv, like a test's fake backend) and its JSON comes back as the typed result, or as a
 * KindlerError of the kind and message the verb printed. The argv are the ones the CLI takes.
 */
import { KindlerError, type ErrorKind } from '../core/errors.js';
import { sanitizeLine } from '../core/text.js';
import type { CreateArgs } from './api.js';
import type { SessionApi, VerbResult } from './session.js';

const KINDS: readonly ErrorKind[] = ['failed', 'usage', 'notFound', 'conflict', 'refused'];

/** The error a failed verb printed: its `--json` error object, else the first line of its stderr. */
export function verbErrorOf(r: VerbResult): KindlerError {
  for (const line of r.out.split('\n')) {
    try {
      const j = JSON.parse(line) as { error?: { kind?: unknown; message?: unknown; field?: unknown } };
      if (j && j.error && typeof j.error.message === 'string') {
        const kind = KINDS.includes(j.error.kind as ErrorKind) ? (j.error.kind as ErrorKind) : 'failed';
        return new KindlerError(kind, j.error.message, typeof j.error.field === 'string' ? j.error.field : undefined);
      }
    } catch {
      /* not JSON */
    }
  }
  const first = r.err.split('\n').find((l) => l.trim() !== '') ?? 'failed';
  return new KindlerError('failed', sanitizeLine(first.replace(/^error:\s*/, '')));
}

/** The create argv for typed arguments (flags in the form's order; blank ones left out). */
export function createArgv(a: CreateArgs): string[] {
  const flag = (k: string, v: string | undefined) => (v !== undefined ? [`--${k}=${v}`] : []);
  return [
    'create',
    ...flag('provider', a.provider),
    ...flag('servers', a.servers),
    ...flag('agents', a.agents),
    ...flag('image', a.image),
    ...flag('http-port', a.httpPort),
    ...flag('https-port', a.httpsPort),
    ...flag('api-port', a.apiPort),
    ...flag('subnet', a.subnet),
    ...flag('ttl', a.ttl),
    ...(a.removeOnFailure ? ['--remove-on-failure'] : []),
    ...(a.route !== undefined ? [`--no-route=${!a.route}`] : []),
    ...flag('register', a.register),
    '--json',
    '--',
    ...(a.name ? [a.name] : []),
  ];
}

export function argvApi(run: (argv: string[]) => Promise<VerbResult>): SessionApi {
  /** Runs argv; the JSON document it printed, or the error it failed with. */
  const call = async <T>(argv: string[]): Promise<T> => {
    const r = await run(argv);
    let j: unknown;
    try {
      j = JSON.parse(r.out);
    } catch {
      if (r.code !== 0) throw verbErrorOf(r);
      throw new KindlerError('failed', `unreadable reply from ${argv[0]}`);
    }
    // A result with a failing exit code (a reconcile pass with errors) is still the result.
    if (!j || typeof j !== 'object' || 'error' in j) throw verbErrorOf(r);
    return j as T;
  };
  const task = async (argv: string[]) => (await call<{ task: never }>(argv)).task;
  return {
    show: (a) => call(['show', a.name, '--json', ...(a.live ? ['--live'] : [])]),
    create: (a) => task(createArgv(a)),
    delete: (a) => task(['delete', a.name, '--json']),
    start: (a) => task(['start', a.name, '--json']),
    stop: (a) => task(['stop', a.name, '--json']),
    cancel: (a) => task(['cancel', a.id, '--json']),
    extend: async (a) => (await call<{ cluster: never }>(['extend', a.name, a.duration, '--json'])).cluster,
    logs: (a) => call(['logs', a.ref, ...(a.tail !== undefined ? ['--tail', String(a.tail)] : []), '--json']),
    reconcile: (a = {}) => call(['reconcile', '--json', ...(a.dryRun ? ['--dry-run'] : [])]),
    audit: (a = {}) =>
      call([
        'audit',
        '--json',
        ...(a.limit !== undefined ? ['--limit', String(a.limit)] : []),
        ...(a.user ? ['--user', a.user] : []),
        ...(a.since ? ['--since', a.since] : []),
      ]),
    kubeconfig: (a) =>
      call([
        'kubeconfig',
        a.name,
        '--json',
        ...(a.mode ? ['--mode', a.mode] : []),
        ...(a.localPort ? ['--local-port', a.localPort] : []),
        ...(a.duration ? ['--duration', a.duration] : []),
      ]),
  };
}
