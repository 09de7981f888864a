/** The `logs` verb. */
import { EXIT } from '../../core/errors.js';
import { countArg } from '../api.js';
import { follow, taskLine, print } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const logs: Verb = {
  name: 'logs',
  summary: "Print a task's log (by task id, or a cluster's latest task); --tail N only its last N lines; --follow streams it live.",
  args: [{ name: 'ref', required: true, help: 'task id (t-N) or cluster name' }],
  flags: {
    follow: { type: 'bool', help: 'keep printing new lines until the task ends' },
    tail: { type: 'string', value: 'N', help: 'only the last N lines (the whole log is never loaded)' },
  },
  async run(p, ctx, json) {
    const tail = countArg(p.flags.tail as string | undefined, 'tail');
    const api = apiOf(ctx);
    const t = api.resolveTask(p.args.ref!);
    if (p.flags.follow && !json) {
      const final = await follow(ctx, t.id, { showLog: true, showProgress: false, ...(tail ? { tail } : {}) });
      if (final) ctx.io.err(taskLine(final));
      return EXIT.ok;
    }
    if (!json) {
      // Streamed from the file at the client's pace, like --follow, but only what is there now.
      await follow(ctx, t.id, { showLog: true, showProgress: false, once: true, ...(tail ? { tail } : {}) });
      return EXIT.ok;
    }
    if (p.flags.follow) await follow(ctx, t.id, { showLog: false, showProgress: false });
    print(ctx, json, await api.readLog(t.id, tail), () => '');
    return EXIT.ok;
  },
};
