/** JSON text for a client's terminal. */

/**
 * JSON for a client's terminal: JSON.stringify escapes C0 controls but passes DEL, the C1 controls
 * (U+0080-U+009F, e.g. U+009B is CSI to many terminals) and U+2028/U+2029 through raw. Those are
 * escaped too, so no stored string (an audited argv, a script's output) reaches a terminal raw.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
