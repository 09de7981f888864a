/** The `cancel` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const cancel: Verb = {
  name: 'cancel',
  summary: 'Cancel a queued or running task; a running script is stopped and its cleanup runs.',
  args: [{ name: 'id', required: true, help: 'task id (t-N)' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    return report(ctx, p, json, await apiOf(ctx).cancel(ctx.actor, { id: p.args.id! }));
  },
};
