/**
 * The verb table's dispatch: parse, authorize, call the engine, print text or --json. Every face
 * (local CLI, control socket, SSH exec) runs verbs through `runCommand`, so parsing, output and exit
 * codes cannot drift. Each verb lives in its own file under verbs/; help in help.ts, --wait and
 * --follow streaming in follow.ts, JSON escaping in json.ts.
 */
import { EXIT, KindlerError, usageError } from '../core/errors.js';
import { sanitizeLine, shown } from '../core/text.js';
import { complete } from './completion.js';
import { may, type Context } from './context.js';
import { helpRequest, wantsJson } from './help.js';
import { jsonText } from './json.js';
import { helpText, parseArgs, type VerbSpec } from './parse.js';
import { VERBS } from './verbs/index.js';

export { VERSION, may, type Context, type IO, type Principal } from './context.js';
export { daemonHelp, generalHelp, helpRequest, verbNames, wantsFlag, wantsJson } from './help.js';
export { jsonText } from './json.js';

export const VERB_SPECS: readonly VerbSpec[] = VERBS;

/** Runs one verb for one client. Never throws: errors become one line and an exit code. */
export async function runCommand(argv: readonly string[], ctx: Context): Promise<number> {
  let json = wantsJson(argv);
  try {
    const [verbName, ...rest] = argv;
    const asked = helpRequest(argv, ctx.io.columns);
    if (asked) {
      if (asked.code !== EXIT.ok) throw usageError(asked.err.replace(/^error: /, '').trimEnd(), 'verb');
      ctx.io.out(asked.out);
      return EXIT.ok;
    }
    if (verbName === '__complete') {
      const { engine } = ctx;
      ctx.io.out(
        complete(VERBS, rest, {
          clusters: () => (may(ctx.actor, 'read') ? engine.listClusters().map((c) => c.name) : []),
          tasks: () => (may(ctx.actor, 'read') ? engine.listTasks({ limit: 50 }).map((t) => t.id) : []),
        })
          .map((w) => `${w}\n`)
          .join(''),
      );
      return EXIT.ok;
    }
    const verb = VERBS.find((v) => v.name === verbName);
    if (!verb) throw usageError(`verb: unknown verb ${shown(verbName!, 40)} (kindler help lists them)`, 'verb');
    const parsed = parseArgs(verb, verb.prepare ? verb.prepare(rest) : rest);
    json = parsed.flags.json === true;
    if (parsed.flags.help) {
      ctx.io.out(helpText(verb, ctx.io.columns));
      return EXIT.ok;
    }
    return await verb.run(parsed, ctx, json);
  } catch (e) {
    const err = e instanceof KindlerError ? e : new KindlerError('failed', `internal error: ${(e as Error).message}`);
    const message = sanitizeLine(err.message);
    // The argv is untrusted: audit it sanitized and cut, never raw (it is shown and stored).
    if (err.kind === 'refused')
      ctx.engine.recordAudit(ctx.actor, sanitizeLine(argv[0] ?? '').slice(0, 40), sanitizeLine(argv[1] ?? '').slice(0, 120), 'refused', message);
    if (json) ctx.io.out(`${jsonText({ error: { kind: err.kind, message, exitCode: err.exitCode, ...(err.field ? { field: err.field } : {}) } })}\n`);
    ctx.io.err(`error: ${message}\n`);
    return err.exitCode;
  }
}
