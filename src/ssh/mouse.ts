/**
 * Terminal input for the TUI, one mouse report per chunk. blessed reads a mouse report only at the
 * start of a chunk of input: when the client's ssh sends a click's press and release (or several
 * wheel steps) in one packet, everything after the first report was lost or read as keys.
 */

/** SGR (`ESC [ < b ; x ; y M|m`), urxvt (`ESC [ b ; x ; y M`) and X10 (`ESC [ M` + 3 bytes) reports. */
const REPORT = /\x1b\[<\d+;\d+;\d+[Mm]|\x1b\[\d+;\d+;\d+M|\x1b\[M[\s\S]{3}/g;

/** Splits `data` so that each mouse report starts a chunk of its own (other bytes stay together, in order). */
export function splitMouseReports(data: Buffer): Buffer[] {
  const text = data.toString('latin1');
  if (!text.includes('\x1b[')) return [data];
  const out: Buffer[] = [];
  let at = 0;
  REPORT.lastIndex = 0;
  for (let m = REPORT.exec(text); m; m = REPORT.exec(text)) {
    if (m.index > at) out.push(data.subarray(at, m.index));
    out.push(data.subarray(m.index, m.index + m[0].length));
    at = m.index + m[0].length;
  }
  if (at < data.length) out.push(data.subarray(at));
  return out.length ? out : [data];
}
