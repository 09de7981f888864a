/**
 * Help text and the argv checks made before a verb is parsed: general and per-verb help, --version,
 * whether argv asks for JSON.
 */
import { EXIT } from '../core/errors.js';
import { shown } from '../core/text.js';
import { VERSION } from './context.js';
import { jsonText } from './json.js';
import { helpText, twoColumns, wrapWords } from './parse.js';
import { VERBS } from './verbs/index.js';

/** `kindler daemon --help`: the daemon is run by the local CLI only, not a verb of the table. */
export function daemonHelp(columns = 80): string {
  const width = Math.max(40, columns);
  return [
    ...wrapWords(
      'Run the kindler daemon in the foreground: the engine, the control socket, the schedules and (when enabled) the SSH service. Local CLI only.',
      width,
    ),
    '',
    'usage: kindler daemon',
    '',
    ...wrapWords(
      'It takes no arguments: configure it with the file named by KINDLER_CONFIG. It stops cleanly on SIGTERM or Ctrl-C (running tasks are recorded as interrupted).',
      width,
    ),
    '',
  ].join('\n');
}

export function generalHelp(columns = 80): string {
  const width = Math.max(40, columns);
  return [
    'kindler: local Kubernetes dev clusters (k3d and kind) on a shared host.',
    '',
    'usage: kindler VERB [ARGS] [--json]',
    '',
    'verbs:',
    ...twoColumns(
      [...VERBS.filter((v) => !v.hidden).map((v): [string, string] => [v.name, v.summary]), ['daemon', 'Run the daemon in the foreground (local CLI only).']],
      width,
      2,
      14,
    ),
    '',
    ...wrapWords(
      'exit codes: 0 ok, 1 the operation failed, 2 usage or validation error, 3 not found, 4 conflict, 5 not allowed, 130 interrupted (Ctrl-C)',
      width,
    ),
    "kindler help VERB (or kindler VERB --help) shows the verb's arguments and flags; kindler --version its version.",
    '',
  ].join('\n');
}

/** The verbs' names, for hints (the SSH face's answer to a shell without a terminal). */
export function verbNames(): string[] {
  return VERBS.filter((v) => !v.hidden).map((v) => v.name);
}

/**
 * Help and version asked for without a verb to run: `help`, `help VERB`, `--help`, `-h`,
 * `--version`. Returns the text and exit code, or null when argv asks for something else. Needs no
 * engine, so the local CLI answers these without a daemon or the state lock.
 */
export function helpRequest(argv: readonly string[], columns = 80): { out: string; err: string; code: number } | null {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') return { out: generalHelp(columns), err: '', code: EXIT.ok };
  if (first === '--version' || first === '-V')
    return { out: wantsJson(rest) ? `${jsonText({ version: VERSION })}\n` : `kindler ${VERSION}\n`, err: '', code: EXIT.ok };
  if (first === 'daemon' && rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h')) return { out: daemonHelp(columns), err: '', code: EXIT.ok };
  if (first !== 'help') return null;
  const topic = rest.find((a) => !a.startsWith('-'));
  if (topic === undefined) return { out: generalHelp(columns), err: '', code: EXIT.ok };
  if (topic === 'daemon') return { out: daemonHelp(columns), err: '', code: EXIT.ok };
  const spec = VERBS.find((v) => v.name === topic && !v.hidden);
  if (!spec) return { out: '', err: `error: help: unknown verb ${shown(topic, 40)} (kindler help lists them)\n`, code: EXIT.usage };
  return { out: helpText(spec, columns), err: '', code: EXIT.ok };
}

/**
 * Whether argv asks for JSON, read before parsing so that a usage error is JSON too: `--json` and
 * `--json=true` ask, `--json=false` does not, the last one wins, nothing after `--` counts. Once
 * argv has parsed, the parsed flag decides (the same answer).
 */
export function wantsJson(argv: readonly string[]): boolean {
  return wantsFlag(argv, 'json');
}

/** Whether a switch is set in argv, read as wantsJson reads --json (for faces that act before parsing). */
export function wantsFlag(argv: readonly string[], name: string): boolean {
  let on = false;
  for (const a of argv) {
    if (a === '--') break;
    if (a === `--${name}` || a === `--${name}=true`) on = true;
    else if (a === `--${name}=false`) on = false;
  }
  return on;
}
