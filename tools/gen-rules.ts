/**
 * Writes scripts/lib/rules.sh: the input rules of src/core (names, images, subnets, counts, ports, wait timeout,
 * API address, providers) as plain bash data, for the validators in scripts/lib/common.sh. The TypeScript
 * constants are the one source; the bash file is generated from them and checked in.
 *
 *   npm run gen:rules            rewrite scripts/lib/rules.sh
 *   npm run gen:rules -- --check exit 1 (saying so) when the checked-in file differs from what would be written
 *
 * test/rules-shared.test.ts runs renderRulesSh() in memory and fails while the checked-in file differs, so a rule
 * changed in TypeScript without regenerating fails the tests.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EXISTING_NAME_LIMIT, EXISTING_NAME_LIMIT_RULE, NAME_CHARS, NAME_CHARS_RULE, NAME_EMPTY_RULE, NAME_FIRST_CHARS, NAME_FIRST_RULE, NAME_LIMIT,
  NAME_LIMIT_RULE, NAME_NO_END, NAME_NO_RUN, RESERVED_NAME_RULE, RESERVED_NAMES,
} from '../src/core/names.js';
import {
  CIDR_PATTERN, COUNT_DIGITS, IMAGE_MAX, IMAGE_PATTERN, IMAGE_RULE, LIMITS, SPECIAL_SUBNETS, specialCidr, SUBNET_KIND_RULE, SUBNET_PREFIX,
  WAIT_TIMEOUT_SECONDS,
} from '../src/core/spec.js';
import { MIN_CLUSTER_PORT, PORT_DIGITS, PORT_MAX } from '../src/core/ports.js';
import { API_ADDRESS_REFUSED, API_ADDRESS_RULE, IPV4_PATTERN } from '../src/core/config.js';
import { PROVIDERS } from '../src/core/types.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the generated file lives, relative to the repository root. */
export const RULES_SH = 'scripts/lib/rules.sh';

/** A bash word that is exactly `s`: single-quoted unless it is plainly safe. Refuses what a line cannot carry. */
function word(s: string | number): string {
  const v = String(s);
  if (/[\x00-\x1f\x7f]/.test(v)) throw new Error(`gen-rules: a rule value holds a control character: ${JSON.stringify(v)}`);
  if (/^[A-Za-z0-9._/:@%+=,-]+$/.test(v)) return v;
  return `'${v.replaceAll("'", `'\\''`)}'`;
}

const scalar = (name: string, v: string | number) => `declare -gr ${name}=${word(v)}`;
const list = (name: string, vs: readonly (string | number)[]) => `declare -gra ${name}=(${vs.map(word).join(' ')})`;

/** Every rule the scripts check, as plain data: what rules.sh is written from. */
export interface Rules {
  providers: readonly string[];
  nameLimit: Record<string, number>;
  nameLimitRule: Record<string, string>;
  existingNameLimit: Record<string, number>;
  existingNameLimitRule: Record<string, string>;
  nameFirstChars: string;
  nameChars: string;
  nameNoEnd: string;
  nameNoRun: string;
  nameEmptyRule: string;
  nameFirstRule: string;
  nameCharsRule: string;
  reservedNames: readonly string[];
  reservedNameRule: string;
  counts: Record<'servers' | 'agents', { min: number; max: number }>;
  countDigits: number;
  minClusterPort: number;
  portMax: number;
  portDigits: number;
  waitTimeout: { min: number; max: number };
  imageMax: number;
  imagePattern: string;
  imageRule: string;
  cidrPattern: string;
  subnetPrefix: { min: number; max: number };
  subnetKindRule: string;
  specialSubnets: readonly { cidr: string; what: string }[];
  ipv4Pattern: string;
  apiAddressRefused: readonly string[];
  apiAddressRule: string;
}

/** The rules as src/core has them today. */
export function currentRules(): Rules {
  return {
    providers: PROVIDERS,
    nameLimit: NAME_LIMIT,
    nameLimitRule: NAME_LIMIT_RULE,
    existingNameLimit: EXISTING_NAME_LIMIT,
    existingNameLimitRule: EXISTING_NAME_LIMIT_RULE,
    nameFirstChars: NAME_FIRST_CHARS,
    nameChars: NAME_CHARS,
    nameNoEnd: NAME_NO_END,
    nameNoRun: NAME_NO_RUN,
    nameEmptyRule: NAME_EMPTY_RULE,
    nameFirstRule: NAME_FIRST_RULE,
    nameCharsRule: NAME_CHARS_RULE,
    reservedNames: RESERVED_NAMES,
    reservedNameRule: RESERVED_NAME_RULE,
    counts: { servers: { ...LIMITS.servers }, agents: { ...LIMITS.agents } },
    countDigits: COUNT_DIGITS,
    minClusterPort: MIN_CLUSTER_PORT,
    portMax: PORT_MAX,
    portDigits: PORT_DIGITS,
    waitTimeout: { ...WAIT_TIMEOUT_SECONDS },
    imageMax: IMAGE_MAX,
    imagePattern: IMAGE_PATTERN,
    imageRule: IMAGE_RULE,
    cidrPattern: CIDR_PATTERN,
    subnetPrefix: { ...SUBNET_PREFIX },
    subnetKindRule: SUBNET_KIND_RULE,
    specialSubnets: SPECIAL_SUBNETS,
    ipv4Pattern: IPV4_PATTERN,
    apiAddressRefused: API_ADDRESS_REFUSED,
    apiAddressRule: API_ADDRESS_RULE,
  };
}

/** The text of scripts/lib/rules.sh (for `r`, the current rules unless given: the tests render others too). */
export function renderRulesSh(r: Rules = currentRules()): string {
  const perProvider = (name: string, m: Record<string, string | number>) => {
    for (const p of r.providers) if (m[p] === undefined) throw new Error(`gen-rules: ${name} has no value for provider ${p}`);
    return `declare -grA ${name}=(${r.providers.map((p) => `[${word(p)}]=${word(m[p]!)}`).join(' ')})`;
  };
  const counts = (k: 'min' | 'max') => `(${(['servers', 'agents'] as const).map((c) => `[${c}]=${word(r.counts[c][k])}`).join(' ')})`;
  const special = r.specialSubnets.map((s) => ({ ...specialCidr(s.cidr), cidr: s.cidr, what: s.what }));
  const lines = [
    '# shellcheck shell=bash',
    '# shellcheck disable=SC2034 # read by lib/common.sh and the scripts that source it',
    '#',
    '# scripts/lib/rules.sh - GENERATED by tools/gen-rules.ts (`npm run gen:rules`) from the TypeScript rules in',
    '# src/core (names.ts, spec.ts, ports.ts, config.ts, types.ts). DO NOT EDIT: change the TypeScript and',
    '# regenerate. test/rules-shared.test.ts fails while this file differs from what the generator writes, and',
    '# checks that the TypeScript and the bash validators (lib/common.sh) accept and refuse the same inputs.',
    '#',
    '# Plain data only, sourced by lib/common.sh: its kd_check_* validators take every limit from here.',
    '',
    '# Providers (types.ts PROVIDERS).',
    list('KD_RULE_PROVIDERS', r.providers),
    '',
    '# Cluster names (names.ts). A new name: NAME_LIMIT, and not reserved. An existing cluster (delete, start,',
    '# stop, status, import-image, adopt): EXISTING_NAME_LIMIT, and a reserved name is allowed (it may have been',
    '# made by hand and adopted). Both: not empty, [FIRST_CHARS][CHARS]*, not ending in NO_END, not containing',
    '# NO_RUN. The *_RULE texts are the rule each check names in its error line.',
    perProvider('KD_RULE_NAME_LIMIT', r.nameLimit),
    perProvider('KD_RULE_NAME_LIMIT_RULE', r.nameLimitRule),
    perProvider('KD_RULE_EXISTING_NAME_LIMIT', r.existingNameLimit),
    perProvider('KD_RULE_EXISTING_NAME_LIMIT_RULE', r.existingNameLimitRule),
    scalar('KD_RULE_NAME_FIRST_CHARS', r.nameFirstChars),
    scalar('KD_RULE_NAME_CHARS', r.nameChars),
    scalar('KD_RULE_NAME_NO_END', r.nameNoEnd),
    scalar('KD_RULE_NAME_NO_RUN', r.nameNoRun),
    scalar('KD_RULE_NAME_EMPTY_RULE', r.nameEmptyRule),
    scalar('KD_RULE_NAME_FIRST_RULE', r.nameFirstRule),
    scalar('KD_RULE_NAME_CHARS_RULE', r.nameCharsRule),
    list('KD_RULE_RESERVED_NAMES', r.reservedNames),
    scalar('KD_RULE_RESERVED_NAME_RULE', r.reservedNameRule),
    '',
    '# Node counts (spec.ts LIMITS, COUNT_DIGITS): decimal digits only, at most COUNT_DIGITS of them.',
    `declare -grA KD_RULE_COUNT_MIN=${counts('min')}`,
    `declare -grA KD_RULE_COUNT_MAX=${counts('max')}`,
    scalar('KD_RULE_COUNT_DIGITS', r.countDigits),
    '',
    '# Host ports of a cluster (ports.ts MIN_CLUSTER_PORT, PORT_MAX, PORT_DIGITS).',
    scalar('KD_RULE_MIN_CLUSTER_PORT', r.minClusterPort),
    scalar('KD_RULE_PORT_MAX', r.portMax),
    scalar('KD_RULE_PORT_DIGITS', r.portDigits),
    '',
    '# Seconds to wait for a cluster (spec.ts WAIT_TIMEOUT_SECONDS); as text, at most as many digits as the maximum.',
    scalar('KD_RULE_WAIT_TIMEOUT_MIN', r.waitTimeout.min),
    scalar('KD_RULE_WAIT_TIMEOUT_MAX', r.waitTimeout.max),
    scalar('KD_RULE_WAIT_TIMEOUT_DIGITS', String(r.waitTimeout.max).length),
    '',
    '# Images (spec.ts IMAGE_MAX, IMAGE_PATTERN, IMAGE_RULE).',
    scalar('KD_RULE_IMAGE_MAX', r.imageMax),
    scalar('KD_RULE_IMAGE_PATTERN', r.imagePattern),
    scalar('KD_RULE_IMAGE_RULE', r.imageRule),
    '',
    '# Subnets (spec.ts CIDR_PATTERN, SUBNET_PREFIX, SUBNET_KIND_RULE, SPECIAL_SUBNETS). The special-purpose ranges',
    '# a subnet must not overlap, as parallel arrays: base address as an unsigned 32-bit integer, prefix, CIDR, what it is.',
    scalar('KD_RULE_CIDR_PATTERN', r.cidrPattern),
    scalar('KD_RULE_SUBNET_PREFIX_MIN', r.subnetPrefix.min),
    scalar('KD_RULE_SUBNET_PREFIX_MAX', r.subnetPrefix.max),
    scalar('KD_RULE_SUBNET_KIND_RULE', r.subnetKindRule),
    list('KD_RULE_SPECIAL_BASE', special.map((s) => s.base)),
    list('KD_RULE_SPECIAL_PREFIX', special.map((s) => s.prefix)),
    list('KD_RULE_SPECIAL_CIDR', special.map((s) => s.cidr)),
    list('KD_RULE_SPECIAL_WHAT', special.map((s) => s.what)),
    '',
    '# The API address of a new cluster (config.ts IPV4_PATTERN, API_ADDRESS_REFUSED, API_ADDRESS_RULE).',
    scalar('KD_RULE_IPV4_PATTERN', r.ipv4Pattern),
    list('KD_RULE_API_ADDRESS_REFUSED', r.apiAddressRefused),
    scalar('KD_RULE_API_ADDRESS_RULE', r.apiAddressRule),
  ];
  return `${lines.join('\n')}\n`;
}

function main(argv: string[]): number {
  const unknown = argv.find((a) => a !== '--check');
  if (unknown !== undefined) {
    process.stderr.write(`error: ${unknown}: unknown argument (usage: gen-rules.ts [--check])\n`);
    return 2;
  }
  const file = join(ROOT, RULES_SH);
  const want = renderRulesSh();
  let have: string | undefined;
  try {
    have = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (argv.includes('--check')) {
    if (have === want) return 0;
    process.stderr.write(`${RULES_SH} is stale: it differs from what tools/gen-rules.ts writes from src/core; run \`npm run gen:rules\` and commit it\n`);
    return 1;
  }
  if (have === want) {
    process.stdout.write(`${RULES_SH} is up to date\n`);
    return 0;
  }
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, want, { mode: 0o644 });
  renameSync(tmp, file);
  process.stdout.write(`wrote ${RULES_SH}\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
