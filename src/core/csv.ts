/**
 * The older tool's environment file (`config/environments.csv`), parsed into create requests.
 * Columns: env,provider,node_port,pf_port,register_portainer,haproxy_route,http_port,https_port,cluster_subnet
 */
import { KindlerError } from './errors.js';
import { checkCreateRequest, MIN_CLUSTER_PORT, parseProvider, type CreateRequest } from './spec.js';
import { parsePort } from './ports.js';

export const CSV_COLUMNS = ['env', 'provider', 'node_port', 'pf_port', 'register_portainer', 'haproxy_route', 'http_port', 'https_port', 'cluster_subnet'] as const;

export interface CsvRow {
  line: number;
  name: string;
  request?: CreateRequest;
  error?: string;
}

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

function parseBool(field: string, raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  throw new KindlerError('usage', `${field}: must be true/false/1/0/yes/no/on/off (got "${raw.slice(0, 20)}")`, field);
}

/** How many data rows the text holds (lines that are neither blank nor `#` comments), without parsing them. */
export function countCsvRows(text: string): number {
  let n = 0;
  let at = 0;
  while (at <= text.length) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    const line = text.slice(at, end).trim();
    if (line && !line.startsWith('#')) n++;
    at = end + 1;
  }
  return n;
}

/** Parses the file's text. Blank and `#` lines are skipped; each data row becomes a request or an error. */
export function parseEnvironmentsCsv(text: string): CsvRow[] {
  const rows: CsvRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const cells = line.split(',').map((c) => c.trim());
    const name = cells[0] ?? '';
    if (cells.length !== CSV_COLUMNS.length) {
      rows.push({ line: i + 1, name, error: `row has ${cells.length} columns, expected ${CSV_COLUMNS.length} (${CSV_COLUMNS.join(',')})` });
      return;
    }
    try {
      const [env, provider, nodePort, , portainer, route, http, https, subnet] = cells;
      const req: CreateRequest = {
        name: env!,
        provider: parseProvider(provider!),
        servers: 1,
        agents: 0,
        ingressNodePort: nodePort ? parsePort('node_port', nodePort) : undefined,
        httpPort: http ? parsePort('http_port', http, MIN_CLUSTER_PORT) : undefined,
        httpsPort: https ? parsePort('https_port', https, MIN_CLUSTER_PORT) : undefined,
        subnet: subnet || undefined,
        // The old tool's two switches map onto the per-cluster choices create --register / --no-route sets.
        options: { route: parseBool('haproxy_route', route!), register: parseBool('register_portainer', portainer!) ? ['portainer'] : [] },
      };
      checkCreateRequest(req);
      rows.push({ line: i + 1, name, request: req });
    } catch (e) {
      rows.push({ line: i + 1, name, error: e instanceof Error ? e.message : String(e) });
    }
  });
  return rows;
}
