/** The `version` verb. */
import { EXIT } from '../../core/errors.js';
import { VERSION } from '../context.js';
import { print } from '../follow.js';
import type { Verb } from './common.js';

export const version: Verb = {
  name: 'version',
  summary: "Print kindler's version.",
  args: [],
  flags: {},
  async run(_p, ctx, json) {
    print(ctx, json, { version: VERSION }, () => `kindler ${VERSION}\n`);
    return EXIT.ok;
  },
};
