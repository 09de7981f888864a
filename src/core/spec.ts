/**
 * Validation of a create request: every input is honoured or refused with the field and the rule.
 */
import { PROVIDERS, REGISTER_TARGETS, type ClusterOptions, type Provider, type RegisterTarget } from './types.js';
import { usageError } from './errors.js';
import { shown } from './text.js';
import { assertName } from './names.js';
import { MIN_CLUSTER_PORT, PORT_MAX } from './ports.js';

export { MIN_CLUSTER_PORT } from './ports.js';

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

/**
 * Node counts of a new cluster. These and the other rules here are the source of truth for the scripts too:
 * `npm run gen:rules` writes them into scripts/lib/rules.sh (test/rules-shared.test.ts fails when it is stale).
 */
export const LIMITS = { servers: { min: 1, max: 7 }, agents: { min: 0, max: 20 } } as const;

/** A count given as text is decimal digits only, at most this many of them ("007" is 7). */
export const COUNT_DIGITS = 3;

/** How long the scripts wait for a cluster (config waitTimeoutSeconds, the scripts' --wait-timeout), in seconds. */
export const WAIT_TIMEOUT_SECONDS = { min: 1, max: 86400 } as const;

/** Whether a wait timeout (seconds) is a whole number in WAIT_TIMEOUT_SECONDS. */
export function waitTimeoutOk(v: unknown): boolean {
  return Number.isInteger(v) && (v as number) >= WAIT_TIMEOUT_SECONDS.min && (v as number) <= WAIT_TIMEOUT_SECONDS.max;
}

export function parseProvider(raw: string): Provider {
  if ((PROVIDERS as readonly string[]).includes(raw)) return raw as Provider;
  throw usageError(`provider: must be one of ${PROVIDERS.join(', ')} (got ${shown(raw, 40)})`, 'provider');
}

export function parseCount(field: 'servers' | 'agents', raw: string): number {
  const { min, max } = LIMITS[field];
  if (!new RegExp(`^[0-9]{1,${COUNT_DIGITS}}$`).test(raw) || Number(raw) < min || Number(raw) > max) {
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

/** The longest image reference kindler passes on. */
export const IMAGE_MAX = 255;

/**
 * A docker image reference, conservatively (registry/path:tag or @sha256:digest), as a regular expression that
 * means the same in JavaScript and in bash's [[ =~ ]] (POSIX ERE, LC_ALL=C).
 */
export const IMAGE_PATTERN = '^[a-z0-9][a-z0-9._/:@-]*$';
const IMAGE_RE = new RegExp(IMAGE_PATTERN);

/** The rule an image breaks, for the error line. */
export const IMAGE_RULE = `must be a docker image reference (lowercase letters, digits, . _ - / : @; at most ${IMAGE_MAX} characters)`;

export function checkImage(image: string): void {
  if (image.length > IMAGE_MAX || !IMAGE_RE.test(image)) throw usageError(`image: ${IMAGE_RULE}`, 'image');
}

export interface Cidr { base: number; prefix: number }

/** The prefix lengths a cluster subnet may have. */
export const SUBNET_PREFIX = { min: 8, max: 28 } as const;

/** An IPv4 CIDR's shape (each octet and the prefix captured), the same in JavaScript and bash's [[ =~ ]]. */
export const CIDR_PATTERN = '^([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})/([0-9]{1,2})$';
const CIDR_RE = new RegExp(CIDR_PATTERN);

/** Why kind takes no --subnet, for the error line. */
export const SUBNET_KIND_RULE = 'only k3d clusters can have their own subnet (kind shares one docker network)';

/** Parses an IPv4 CIDR whose address is the network address, prefix SUBNET_PREFIX (8-28). */
export function parseSubnet(raw: string): Cidr {
  const m = CIDR_RE.exec(raw);
  const bad = (rule: string) => usageError(`subnet: ${rule} (got ${shown(raw, 40)})`, 'subnet');
  if (!m) throw bad('must be an IPv4 CIDR like 10.101.0.0/16');
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) throw bad('each address octet must be 0-255');
  const prefix = Number(m[5]);
  if (prefix < SUBNET_PREFIX.min || prefix > SUBNET_PREFIX.max) throw bad(`prefix length must be ${SUBNET_PREFIX.min}-${SUBNET_PREFIX.max}`);
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
 * scripts/lib/common.sh (kd_check_subnet) refuses the same list, from scripts/lib/rules.sh.
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
    if (subnetsOverlap(mine, specialCidr(s.cidr))) {
      throw usageError(`subnet: must not overlap a special-purpose range (${s.cidr} is ${s.what}) (got ${shown(raw, 40)})`, 'subnet');
    }
  }
  return mine;
}

/** A special-purpose range's base address (as an unsigned 32-bit number) and prefix. */
export function specialCidr(cidr: string): Cidr {
  const [addr, prefix] = cidr.split('/') as [string, string];
  return { base: addr.split('.').reduce((n, o) => n * 256 + Number(o), 0), prefix: Number(prefix) };
}

/** Throws a usage error naming `field` (a flag, or a CSV column) when a cluster's host port is not a whole number MIN_CLUSTER_PORT-65535. */
export function assertClusterPort(field: string, v: number): void {
  if (!Number.isInteger(v) || v < MIN_CLUSTER_PORT || v > PORT_MAX) throw usageError(`${field}: must be a port number ${MIN_CLUSTER_PORT}-${PORT_MAX} (got ${v})`, field);
}

/** Checks the whole request; throws on the first broken rule. */
export function checkCreateRequest(req: CreateRequest): void {
  assertName(req.name, req.provider);
  parseCount('servers', String(req.servers));
  parseCount('agents', String(req.agents));
  if (req.image !== undefined) checkImage(req.image);
  if (req.subnet !== undefined) {
    if (req.provider !== 'k3d') throw usageError(`subnet: ${SUBNET_KIND_RULE}`, 'subnet');
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
    assertClusterPort(flagOf(k), v);
    const other = seen.get(v);
    if (other) throw usageError(`${flagOf(k)}: must differ from ${other} (both ${v})`, flagOf(k));
    seen.set(v, flagOf(k));
  }
}

/** The CLI flag name of a port field, for messages. */
export function flagOf(k: 'httpPort' | 'httpsPort' | 'apiPort'): string {
  return k === 'httpPort' ? 'http-port' : k === 'httpsPort' ? 'https-port' : 'api-port';
}
