/** The `delete` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const deleteVerb: Verb = {
  name: 'delete',
  summary: 'Delete a cluster (idempotent: an already-gone cluster is removed with a note).',
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    return report(ctx, p, json, await apiOf(ctx).delete(ctx.actor, { name: p.args.name! }));
  },
};
