/**
 * Validation of a create request: every input is honoured or refused with the field and the rule.
 */
import { PROVIDERS, REGISTER_TARGETS, type ClusterOptions, type Provider, type RegisterTarget } from './types.js';
import { usageError } from './errors.js';
import { shown } from './text.js';
import { assertName } from './names.js';

export interface CreateRequest {
  name: string;
  provider: Provider;
  servers: number;
  agents: number;
  image?: string;
  httpPort?: number;
  httpsPort?: number;
  apiPort?: number;
  subnet?: string;
  ttlMs?: number;
  /** Drop the record instead of keeping it `failed` when the create fails. */
  removeOnFailure?: boolean;
  ingressNodePort?: number;
  /** Per-cluster choices; a field not given is the recorded one on a retry, else the default (routed, no registration). */
  options?: ClusterOptions;
}

/**
 * What a face asks for when it creates (or retries) a cluster: a setting not given is undefined. The engine
 * fills it from the record when the name is a failed or absent record (a retry reuses everything recorded),
 * else from the config defaults (a new cluster), then checks the whole request with checkCreateRequest.
 */
export type CreateInput = Omit<CreateRequest, 'provider' | 'servers' | 'agents'> & { provider?: Provider; servers?: number; agents?: number };

export const LIMITS = { servers: { min: 1, max: 7 }, agents: { min: 0, max: 20 } } as const;

export function parseProvider(raw: string): Provider {
  if ((PROVIDERS as readonly string[]).includes(raw)) return raw as Provider;
  throw usageError(`provider: must be one of ${PROVIDERS.join(', ')} (got ${shown(raw, 40)})`, 'provider');
}

export function parseCount(field: 'servers' | 'agents', raw: string): number {
  const { min, max } = LIMITS[field];
  if (!/^[0-9]{1,3}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw usageError(`${field}: must be a whole number ${min}-${max} (got ${shown(raw, 40)})`, field);
  }
  return Number(raw);
}

/**
 * Parses `--register`: a comma-separated list of registration targets (portainer, argocd), each at most once,
 * or `none` for the empty list.
 */
export function parseRegister(raw: string): RegisterTarget[] {
  const rule = `must be a comma-separated list of ${REGISTER_TARGETS.join(', ')} (each at most once), or none`;
  if (raw.trim() === 'none') return [];
  const items = raw.split(',').map((x) => x.trim());
  const out: RegisterTarget[] = [];
  for (const item of items) {
    if (!(REGISTER_TARGETS as readonly string[]).includes(item)) throw usageError(`register: ${rule} (got ${shown(raw, 60)})`, 'register');
    if (out.includes(item as RegisterTarget)) throw usageError(`register: ${rule}; ${item} is given twice (got ${shown(raw, 60)})`, 'register');
    out.push(item as RegisterTarget);
  }
  return out;
}

/** A docker image reference, conservatively: registry/path:tag or @sha256:digest. */
export function checkImage(image: string): void {
  if (image.length > 255 || !/^[a-z0-9][a-z0-9._\-/:@]*$/.test(image)) {
    throw usageError('image: must be a docker image reference (lowercase letters, digits, . _ - / : @; at most 255 characters)', 'image');
  }
}

export interface Cidr { base: number; prefix: number }

/** Parses an IPv4 CIDR whose address is the network address, prefix 8-28. */
export function parseSubnet(raw: string): Cidr {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(raw);
  const bad = (rule: string) => usageError(`subnet: ${rule} (got ${shown(raw, 40)})`, 'subnet');
  if (!m) throw bad('must be an IPv4 CIDR like 10.101.0.0/16');
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) throw bad('each address octet must be 0-255');
  const prefix = Number(m[5]);
  if (prefix < 8 || prefix > 28) throw bad('prefix length must be 8-28');
  const base = ((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((base & mask) >>> 0 !== base) throw bad('address must be the network address of the prefix');
  return { base, prefix };
}

export function subnetsOverlap(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const mask = (0xffffffff << (32 - p)) >>> 0;
  return ((a.base & mask) >>> 0) === ((b.base & mask) >>> 0);
}

/**
 * Special-purpose IPv4 ranges (RFC 6890 and the IANA special-purpose registry) a cluster network must not
 * overlap: they are not ordinary private address space, and a docker network there shadows the host's own
 * routes (loopback, link-local, carrier NAT or VPN), or can never work (multicast, reserved, broadcast).
 * scripts/lib/common.sh (kd_check_subnet) refuses the same list.
 */
export const SPECIAL_SUBNETS: readonly { cidr: string; what: string }[] = [
  { cidr: '0.0.0.0/8', what: '"this network", RFC 791' },
  { cidr: '100.64.0.0/10', what: 'shared address space (carrier NAT, VPNs), RFC 6598' },
  { cidr: '127.0.0.0/8', what: 'loopback, RFC 1122' },
  { cidr: '169.254.0.0/16', what: 'link-local, RFC 3927' },
  { cidr: '192.0.0.0/24', what: 'IETF protocol assignments, RFC 6890' },
  { cidr: '192.0.2.0/24', what: 'documentation TEST-NET-1, RFC 5737' },
  { cidr: '192.88.99.0/24', what: '6to4 relay anycast, RFC 7526' },
  { cidr: '198.18.0.0/15', what: 'benchmarking, RFC 2544' },
  { cidr: '198.51.100.0/24', what: 'documentation TEST-NET-2, RFC 5737' },
  { cidr: '203.0.113.0/24', what: 'documentation TEST-NET-3, RFC 5737' },
  { cidr: '224.0.0.0/4', what: 'multicast, RFC 5771' },
  { cidr: '240.0.0.0/4', what: 'reserved and broadcast 255.255.255.255, RFC 1112 and RFC 919' },
];

/** Parses a subnet a cluster may use: a valid CIDR (see parseSubnet) that overlaps no special-purpose range. */
export function checkSubnet(raw: string): Cidr {
  const mine = parseSubnet(raw);
  for (const s of SPECIAL_SUBNETS) {
    const [addr, prefix] = s.cidr.split('/') as [string, string];
    const base = addr.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    if (subnetsOverlap(mine, { base, prefix: Number(prefix) })) {
      throw usageError(`subnet: must not overlap a special-purpose range (${s.cidr} is ${s.what}) (got ${shown(raw, 40)})`, 'subnet');
    }
  }
  return mine;
}

/** Lowest host port a cluster may publish: ports below it are privileged and belong to the host's own services. */
export const MIN_CLUSTER_PORT = 1024;

/** Checks the whole request; throws on the first broken rule. */
export function checkCreateRequest(req: CreateRequest): void {
  assertName(req.name, req.provider);
  parseCount('servers', String(req.servers));
  parseCount('agents', String(req.agents));
  if (req.image !== undefined) checkImage(req.image);
  if (req.subnet !== undefined) {
    if (req.provider !== 'k3d') throw usageError('subnet: only k3d clusters can have their own subnet (kind shares one network)', 'subnet');
    checkSubnet(req.subnet);
  }
  const o = req.options;
  if (o !== undefined) {
    if (o.route !== undefined && typeof o.route !== 'boolean') throw usageError('route: must be true or false', 'route');
    if (o.register !== undefined) parseRegister(Array.isArray(o.register) && o.register.length ? o.register.join(',') : 'none');
  }
  const given = (['httpPort', 'httpsPort', 'apiPort'] as const).filter((k) => req[k] !== undefined);
  const seen = new Map<number, string>();
  for (const k of given) {
    const v = req[k]!;
    if (!Number.isInteger(v) || v < MIN_CLUSTER_PORT || v > 65535) throw usageError(`${flagOf(k)}: must be a port number ${MIN_CLUSTER_PORT}-65535 (got ${v})`, flagOf(k));
    const other = seen.get(v);
    if (other) throw usageError(`${flagOf(k)}: must differ from ${other} (both ${v})`, flagOf(k));
    seen.set(v, flagOf(k));
  }
}

/** The CLI flag name of a port field, for messages. */
export function flagOf(k: 'httpPort' | 'httpsPort' | 'apiPort'): string {
  return k === 'httpPort' ? 'http-port' : k === 'httpsPort' ? 'https-port' : 'api-port';
}
