/**
 * Which line of a tool's stderr says what failed. The same rules as kd_pick_error_line in
 * scripts/lib/common.sh, for the few reasons taken from a script's raw stderr (a script killed before
 * it printed its own error marker): the last error line in a tool's own format, never a hint or summary
 * that only follows from it (kubeadm's "To see the stack trace …", k3d's roll-back lines, cobra's
 * "Run '… --help'").
 */
import { cleanLine } from './text.js';

const NOISE: readonly RegExp[] = [
  />>> Rolling Back|Cluster creation FAILED|At least one error occurr?ed/,
  /^(Run|See) '.*--help' for (more information|usage)/,
  /^To see the stack trace of this error execute with --v=/,
  /^Error: failed to start containers: /,
  /^Command Output:$|^Stack Trace:/,
];

const ERROR_LINE =
  /^(ERROR: |(FATA|ERRO)(\[\d+\])? |error: |Error: |Error response from daemon: |Error from server|Error in configuration|The connection to the server )|^time=.* level=(fatal|error) /;

/** True for a line that never says what failed (hints, roll-back and summary lines). */
export function isErrorNoise(line: string): boolean {
  return NOISE.some((re) => re.test(line));
}

/** True for an error line in a tool's own format (kind ERROR:, k3d FATA/ERRO, kubectl error:, docker Error …). */
export function isToolErrorLine(line: string): boolean {
  return ERROR_LINE.test(line);
}

/** The telling line among `lines` (oldest first), cleaned; undefined when there is none. */
export function pickErrorLine(lines: readonly string[]): string | undefined {
  let fallback: string | undefined;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = cleanLine(lines[i]!, 2000).trim();
    if (!line || isErrorNoise(line)) continue;
    fallback ??= line;
    if (isToolErrorLine(line)) return line;
  }
  return fallback;
}
