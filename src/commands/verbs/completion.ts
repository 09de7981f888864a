/** The `completion` verb. */
import { EXIT, usageError } from '../../core/errors.js';
import { shown } from '../../core/text.js';
import { completionScript, SHELLS, type Shell } from '../completion.js';
import type { Verb } from './common.js';

export const completion: Verb = {
  name: 'completion',
  summary: 'Print a shell completion script (verbs, flags, cluster names, task ids), e.g. source <(kindler completion bash).',
  args: [{ name: 'shell', required: true, help: 'bash, zsh or fish' }],
  flags: {},
  async run(p, ctx) {
    const shell = p.args.shell!;
    if (!(SHELLS as readonly string[]).includes(shell)) throw usageError(`shell: must be one of ${SHELLS.join(', ')} (got ${shown(shell, 20)})`, 'shell');
    ctx.io.out(completionScript(shell as Shell));
    return EXIT.ok;
  },
};
