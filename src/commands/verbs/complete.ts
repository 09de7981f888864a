/** The `__complete` verb. */
import { EXIT } from '../../core/errors.js';
import type { Verb } from './common.js';

export const completeVerb: Verb = {
  name: '__complete',
  hidden: true,
  summary: 'Completion candidates for the words after kindler (used by the completion scripts).',
  args: [],
  flags: {},
  // Never parsed: the words are whatever is on the command line being completed (runCommand).
  async run() {
    return EXIT.ok;
  },
};
