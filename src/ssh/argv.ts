/**
 * Splits an SSH exec command line into argv. Never a shell: whitespace separates words, 'single'
 * quotes are literal, "double" quotes allow \" and \\, a backslash outside quotes escapes the next
 * character. `;`, `|`, `$(...)`, globs and the like are ordinary characters.
 */
import { usageError } from '../core/errors.js';

export const MAX_COMMAND_LENGTH = 16_384;
export const MAX_ARGS = 256;

export function splitCommand(command: string): string[] {
  if (command.length > MAX_COMMAND_LENGTH) throw usageError(`command: longer than ${MAX_COMMAND_LENGTH} characters`);
  if (/[\0\r\n]/.test(command)) throw usageError('command: must be one line');
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (command[i + 1] === '"' || command[i + 1] === '\\')) cur += command[++i];
      else cur += c;
      continue;
    }
    if (c === ' ' || c === '\t') {
      if (inWord) {
        out.push(cur);
        cur = '';
        inWord = false;
      }
      continue;
    }
    inWord = true;
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\' && i + 1 < command.length) cur += command[++i];
    else cur += c;
  }
  if (quote) throw usageError(`command: unterminated ${quote === '"' ? 'double' : 'single'} quote`);
  if (inWord) out.push(cur);
  if (out.length > MAX_ARGS) throw usageError(`command: more than ${MAX_ARGS} arguments`);
  return out;
}
