/** The `import-image` verb. */
import { checkImage } from '../../core/spec.js';
import { report, WAIT } from '../follow.js';
import { type Verb, allow } from './common.js';

export const importImage: Verb = {
  name: 'import-image',
  summary: 'Import a local docker image into a running cluster.',
  args: [
    { name: 'name', required: true, help: 'cluster name' },
    { name: 'image', required: true, help: 'image reference present in the local docker store' },
  ],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    checkImage(p.args.image!);
    allow(ctx, 'import-image', p.args.name!);
    return report(ctx, p, json, await ctx.engine.importImage(p.args.name!, p.args.image!, ctx.actor));
  },
};
