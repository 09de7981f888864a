/** The `task` verb. */
import { EXIT } from '../../core/errors.js';
import { sanitizeLine } from '../../core/text.js';
import { print } from '../follow.js';
import { taskTable } from '../format.js';
import { type Verb, apiOf } from './common.js';

export const task: Verb = {
  name: 'task',
  summary: 'Show one task: state, progress, steps, error and the last stderr lines.',
  args: [{ name: 'id', required: true, help: 'task id (t-N)' }],
  flags: {},
  async run(p, ctx, json) {
    const t = await apiOf(ctx).task(ctx.actor, { id: p.args.id! });
    print(ctx, json, { task: t }, () => {
      let s = taskTable([t]);
      for (const st of t.steps) s += `  [${st.n}/${st.of}] ${st.state.padEnd(9)} ${sanitizeLine(st.title)}\n`;
      if (t.notes.length) s += t.notes.map((n) => `  note: ${sanitizeLine(n)}\n`).join('');
      if (t.error?.stderrTail.length) s += `last stderr lines:\n${t.error.stderrTail.map((l) => `  ${sanitizeLine(l)}`).join('\n')}\n`;
      return s;
    });
    return EXIT.ok;
  },
};
