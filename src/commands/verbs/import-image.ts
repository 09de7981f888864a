/** The `import-image` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const importImage: Verb = {
  name: 'import-image',
  summary: 'Import a local docker image into a running cluster.',
  args: [
    { name: 'name', required: true, help: 'cluster name' },
    { name: 'image', required: true, help: 'image reference present in the local docker store' },
  ],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    return report(ctx, p, json, await apiOf(ctx).importImage(ctx.actor, { name: p.args.name!, image: p.args.image! }));
  },
};
