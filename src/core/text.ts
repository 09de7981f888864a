/**
 * Untrusted text (names, script output, branch names) is made safe before it reaches any terminal.
 */

// CSI, OSC, DCS/SOS/PM/APC strings, two-byte escapes, then any remaining C0/C1 control or DEL.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]/g;
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** Removes escape sequences and control characters; keeps tabs (as spaces) and printable unicode. */
export function sanitizeLine(s: string): string {
  return s.replace(ESCAPES, '').replace(/\t/g, '  ').replace(/\r/g, '').replace(/\n/g, ' ').replace(CONTROLS, '');
}

/** The longest line stored as it is; longer ones are cut by `cleanLine`. */
export const LINE_CAP = 16_384;

/** Sanitizes and caps a line's length for display and storage. */
export function cleanLine(s: string, max = LINE_CAP): string {
  const c = sanitizeLine(s);
  return c.length > max ? `${c.slice(0, max)}… [${c.length - max} more characters]` : c;
}

/** Quote a value in messages so odd characters stay visible. */
export function shown(s: string, max = 80): string {
  const c = sanitizeLine(s);
  return JSON.stringify(c.length > max ? `${c.slice(0, max)}…` : c);
}
