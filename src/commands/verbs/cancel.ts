/** The `cancel` verb. */
import { authorize } from '../../access/authorize.js';
import { refused } from '../../core/errors.js';
import { Engine } from '../../engine/engine.js';
import { report, WAIT } from '../follow.js';
import { type Verb, resolveTask } from './common.js';

export const cancel: Verb = {
  name: 'cancel',
  summary: 'Cancel a queued or running task; a running script is stopped and its cleanup runs.',
  args: [{ name: 'id', required: true, help: 'task id (t-N)' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    Engine.checkTaskId(p.args.id!);
    const target = resolveTask(ctx, p.args.id!);
    const owner = ctx.engine.getCluster(target.cluster)?.owner;
    const d = authorize(ctx.actor, 'cancel', { owner, taskUser: target.user });
    if (!d.ok) throw refused(d.reason);
    const t = await ctx.engine.cancel(p.args.id!, ctx.actor);
    return report(ctx, p, json, t);
  },
};
