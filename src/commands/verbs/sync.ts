/** The `sync` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const sync: Verb = {
  name: 'sync',
  summary: "Re-run a running cluster's route and GitOps branch steps (finishes what a failed step left).",
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    return report(ctx, p, json, await apiOf(ctx).sync(ctx.actor, { name: p.args.name! }));
  },
};
