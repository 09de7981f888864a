/**
 * Issue 16: the input rules live once. src/core holds them; tools/gen-rules.ts writes scripts/lib/rules.sh from
 * them (`npm run gen:rules`); the kd_check_* validators in scripts/lib/common.sh use only that data.
 *
 * Here: the checked-in rules.sh is byte for byte what the generator writes today; the TypeScript validators and
 * the bash ones accept and refuse the same table of inputs, naming the same field (and, where both word it, the
 * same rule); the bash validators follow the data (a rules.sh with other values moves every edge, so no limit is
 * left written in bash); and the real scripts refuse a reserved name for a new cluster only.
 * Every bash check of a table runs in one bash process (a subshell per check).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentRules, renderRulesSh, RULES_SH, type Rules } from '../tools/gen-rules.js';
import { assertName, EXISTING_NAME_LIMIT, NAME_LIMIT, RESERVED_NAMES, type NameUse } from '../src/core/names.js';
import { checkCreateRequest, checkImage, checkSubnet, IMAGE_MAX, LIMITS, parseCount, parseProvider, SPECIAL_SUBNETS, specialCidr, SUBNET_PREFIX, WAIT_TIMEOUT_SECONDS } from '../src/core/spec.js';
import { MIN_CLUSTER_PORT, parsePort, PORT_MAX } from '../src/core/ports.js';
import { API_ADDRESS_REFUSED, configProblems, DEFAULT_CONFIG, type Config } from '../src/core/config.js';
import { KindlerError } from '../src/core/errors.js';
import { PROVIDERS, type Provider } from '../src/core/types.js';
import { ROOT, makeWorld, scriptEnv, verb, withEngine } from './helpers.js';

const LIB = join(ROOT, 'scripts', 'lib');

// ---- running the bash validators -------------------------------------------------------------------

/**
 * Reads calls from stdin (a count, then that many words, each NUL-terminated), runs each kd_check_* call in a
 * subshell of one bash that sourced lib/common.sh, and writes "STATUS<TAB>OUTPUT" NUL-terminated per call.
 */
const HARNESS = [
  'source "$1"',
  "while IFS= read -r -d '' n; do",
  '  args=()',
  '  for ((i = 0; i < n; i++)); do',
  "    IFS= read -r -d '' a",
  '    args+=("$a")',
  '  done',
  '  if [[ ${args[0]} != kd_check_* ]]; then',
  "    printf 'not a validator: %s\\n' \"${args[0]}\" >&2",
  '    exit 99',
  '  fi',
  '  if out=$( ("${args[@]}") 2>&1); then rc=0; else rc=$?; fi',
  "  printf '%s\\t%s\\0' \"$rc\" \"$out\"",
  'done',
].join('\n');

interface Verdict {
  ok: boolean;
  /** The field the refusal names (the flag without `--`). */
  field?: string;
  /** The rule, as the line words it after the field. */
  rule?: string;
}

/** Runs every call in one bash against LIB/common.sh (and the rules.sh beside it). */
function bashVerdicts(calls: string[][], lib = LIB): Verdict[] {
  const parts: string[] = [];
  for (const c of calls) {
    for (const w of c) assert.ok(!w.includes('\0'), 'argv cannot carry NUL');
    parts.push(String(c.length), ...c);
  }
  const r = spawnSync('bash', ['-c', HARNESS, 'kd-rules-harness', join(lib, 'common.sh')], {
    input: parts.map((p) => `${p}\0`).join(''),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, `the harness failed: ${r.stderr}`);
  const outs = r.stdout.split('\0');
  assert.equal(outs.pop(), '', 'every answer ends with NUL');
  assert.equal(outs.length, calls.length, 'one answer per call');
  return outs.map((o, i) => {
    const tab = o.indexOf('\t');
    const rc = Number(o.slice(0, tab));
    const out = o.slice(tab + 1);
    const call = JSON.stringify(calls[i]);
    if (rc === 0) {
      assert.equal(out, '', `${call}: an accepted value prints nothing`);
      return { ok: true };
    }
    assert.equal(rc, 2, `${call}: a refusal exits 2 (got ${rc}: ${out})`);
    assert.ok(!out.includes('\n'), `${call}: a refusal is one line: ${JSON.stringify(out)}`);
    const m = /^error: --([a-z-]+): (.+)$/.exec(out);
    assert.ok(m, `${call}: "error: --FLAG: RULE" (got ${JSON.stringify(out)})`);
    return { ok: false, field: m[1], rule: m[2] };
  });
}

/** What a TypeScript validator says: accepted, or the usage error's field and rule. */
function tsVerdict(f: () => unknown): Verdict {
  try {
    f();
    return { ok: true };
  } catch (e) {
    if (!(e instanceof KindlerError) || e.kind !== 'usage' || !e.field) throw e;
    assert.ok(e.message.startsWith(`${e.field}: `), e.message);
    return { ok: false, field: e.field, rule: e.message.slice(e.field.length + 2) };
  }
}

/** A config problem about `key` as a verdict for the scripts' `field`. */
function configVerdict(over: Partial<Config>, key: string, field: string): Verdict {
  const problems = configProblems({ ...BASE_CONFIG, ...over });
  const p = problems.find((x) => x.startsWith(`${key}: `));
  const others = problems.filter((x) => x !== p);
  assert.deepEqual(others, [], 'no other problem');
  return p ? { ok: false, field, rule: p.slice(key.length + 2) } : { ok: true };
}
const BASE_CONFIG = { ...DEFAULT_CONFIG, dataDir: '/d', scriptsDir: '/s', hooksDir: '/h' } as Config;

interface Case {
  what: string;
  ts: () => Verdict;
  bash: string[];
  /** How the rules compare when both refuse: `same` (the bash line is the TypeScript one, less a trailing
   *  ` (got …)`), or `field` (only the field: the two faces word these differently on purpose). */
  text: 'same' | 'field';
  /** The expected outcome, where the table states it (otherwise only agreement is checked). */
  ok?: boolean;
  /** When refused, the rule must contain this (e.g. the special-purpose range that was hit). */
  ruleHas?: string;
}

/** Runs a table; returns every disagreement as a line (the test asserts there are none). */
function disagreements(cases: Case[]): string[] {
  const bash = bashVerdicts(cases.map((c) => c.bash));
  const out: string[] = [];
  cases.forEach((c, i) => {
    const t = c.ts();
    const b = bash[i]!;
    const show = (v: Verdict) => (v.ok ? 'accepts' : `refuses: ${v.field}: ${v.rule}`);
    const say = (why: string) => out.push(`${c.what}: ${why}\n    ts   ${show(t)}\n    bash ${show(b)}`);
    if (t.ok !== b.ok) return say('they disagree');
    if (c.ok !== undefined && t.ok !== c.ok) return say(`both ${t.ok ? 'accept' : 'refuse'}, the rule says ${c.ok ? 'accept' : 'refuse'}`);
    if (t.ok) return;
    if (t.field !== b.field) return say('they name different fields');
    if (c.text === 'same' && t.rule !== b.rule && !t.rule!.startsWith(`${b.rule} (got `)) return say('they word the rule differently');
    if (c.ruleHas && !(t.rule!.includes(c.ruleHas) && b.rule!.includes(c.ruleHas))) return say(`the rule should name ${c.ruleHas}`);
    return undefined;
  });
  return out;
}

// ---- the table -------------------------------------------------------------------------------------

const a = (n: number) => 'a'.repeat(n);
const ip = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

function nameCases(): Case[] {
  const lengths = [...new Set([...Object.values(NAME_LIMIT), ...Object.values(EXISTING_NAME_LIMIT)].flatMap((l) => [l - 1, l, l + 1]))];
  const inputs = [
    'dev', 'a', 'a1', 'a1-b2', 'x-1-y', '', 'Dev', 'DEV', '1dev', '-dev', 'dev-', 'a--b', 'a---b', 'dev_1', 'dev.x', 'dev x', ' dev', 'dev ',
    'dév', 'é', '日本', 'dev\n', '\ndev', 'dev\t', '\x1b[31mred', '$(id)', "a'b", 'a"b', 'a/b', 'a*', '[a]',
    ...lengths.map(a), `${a(40)}-`, `${a(20)}--${a(20)}`, 'é'.repeat(20), `a${'é'.repeat(40)}`, a(500),
    ...RESERVED_NAMES, ...RESERVED_NAMES.map((r) => `${r}1`), 'ADMIN', 'admin-',
  ];
  const out: Case[] = [];
  for (const p of PROVIDERS) {
    for (const use of ['new', 'existing'] as NameUse[]) {
      const limit = (use === 'new' ? NAME_LIMIT : EXISTING_NAME_LIMIT)[p];
      for (const v of inputs) {
        let ok: boolean | undefined;
        if (/^a+$/.test(v)) ok = v.length <= limit;
        if (RESERVED_NAMES.includes(v)) ok = use === 'existing';
        out.push({
          what: `name (${use}, ${p}) ${JSON.stringify(v.length > 50 ? `${v.slice(0, 20)}…(${v.length})` : v)}`,
          ts: () => tsVerdict(() => assertName(v, p, use)),
          bash: use === 'new' ? ['kd_check_name', v, p, 'new'] : ['kd_check_name', v, p],
          text: 'same',
          ok,
          ...(RESERVED_NAMES.includes(v) && use === 'new' ? { ruleHas: 'is reserved' } : {}),
        });
      }
    }
  }
  return out;
}

function imageCases(): Case[] {
  const inputs = [
    'nginx', 'nginx:1.27', 'rancher/k3s:v1.30.4-k3s1', `registry.local:5000/team/app@sha256:${'0'.repeat(64)}`, 'localhost/x_y', '0x',
    a(IMAGE_MAX), a(IMAGE_MAX + 1), `${'a/'.repeat((IMAGE_MAX - 1) / 2)}a`, 'Nginx', 'x:Y', '-x', '.x', '_x', '/x', ':x', '@x', 'a b', 'a;b',
    '$(id)', '', 'é', 'x\n', '\nx', 'x\t', 'a*', 'a?', 'a[1]', "a'b",
  ];
  return inputs.map((v) => ({
    what: `image ${JSON.stringify(v.length > 50 ? `${v.slice(0, 20)}…(${v.length})` : v)}`,
    ts: () => tsVerdict(() => checkImage(v)),
    bash: ['kd_check_image', 'image', v],
    text: 'same',
    ok: /^a+$/.test(v) ? v.length <= IMAGE_MAX : undefined,
  }));
}

function subnetCases(): Case[] {
  const { min, max } = SUBNET_PREFIX;
  const cases: { v: string; ok?: boolean; ruleHas?: string }[] = [
    ...['10.101.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '100.128.0.0/16', '198.20.0.0/16', '10.0.0.16/28', '010.0.0.0/8'].map((v) => ({ v, ok: true })),
    ...['10.0.0.1/16', '256.0.0.0/8', '10.0.0.0', '10.0.0/8', '10.0.0.0/016', '1000.0.0.0/8', ' 10.0.0.0/8', '10.0.0.0/8 ', '10.0.0.0/8\n',
      'fd00::/64', '', '10.0.0.0/-8', '10.0.0.0/0', '10.0.0.0/32', '10.0.0.0/8/8', '10.0.0.0./8', '١٠.0.0.0/8'].map((v) => ({ v, ok: false })),
    // The prefix edges, on a network address for every one of them.
    ...[min - 1, min, max, max + 1].map((q) => ({ v: `10.0.0.0/${q}`, ok: q >= min && q <= max })),
  ];
  for (const s of SPECIAL_SUBNETS) {
    const { base, prefix } = specialCidr(s.cidr);
    const size = 2 ** (32 - prefix);
    const q = Math.min(max, Math.max(min, prefix));
    const step = 2 ** (32 - q);
    const has = `(${s.cidr} is `;
    cases.push({ v: `${ip(base)}/${q}`, ok: false, ruleHas: has }); // the range, or its first block
    cases.push({ v: `${ip(base + size - step)}/${q}`, ok: false, ruleHas: has }); // its last block
    if (prefix >= min) cases.push({ v: `${ip(base - (base % 2 ** (32 - min)))}/${min}`, ok: false }); // a network around it
    if (prefix >= min && prefix < max) cases.push({ v: `${ip(base)}/${max}`, ok: false, ruleHas: has }); // a small one inside
    if (base - step >= 0) cases.push({ v: `${ip(base - step)}/${q}` }); // the neighbours (may be special themselves)
    if (base + size < 2 ** 32) cases.push({ v: `${ip(base + size)}/${q}` });
  }
  return cases.map(({ v, ok, ruleHas }) => ({
    what: `subnet ${JSON.stringify(v)}`,
    ts: () => tsVerdict(() => checkSubnet(v)),
    bash: ['kd_check_subnet', 'subnet', v],
    text: 'same',
    ok,
    ruleHas,
  }));
}

function countCases(): Case[] {
  const out: Case[] = [];
  for (const f of ['servers', 'agents'] as const) {
    const { min, max } = LIMITS[f];
    const edges = [min - 1, min, max, max + 1].filter((n) => n >= 0);
    const inputs = [...edges.map(String), '00', '01', '007', '0007', '020', '0020', '-1', '+1', '1.0', '1e1', ' 1', '1 ', '', 'two', '99999999999999999999', '٣', '0x1'];
    for (const v of inputs) {
      out.push({
        what: `${f} ${JSON.stringify(v)}`,
        ts: () => tsVerdict(() => parseCount(f, v)),
        bash: ['kd_check_count', f, v],
        text: 'same',
        ok: edges.map(String).includes(v) ? Number(v) >= min && Number(v) <= max : undefined,
      });
    }
  }
  return out;
}

function portCases(): Case[] {
  const edges = [0, 1, MIN_CLUSTER_PORT - 1, MIN_CLUSTER_PORT, MIN_CLUSTER_PORT + 1, PORT_MAX, PORT_MAX + 1];
  const inputs = [...edges.map(String), '80', '443', '01024', '001024', '0080', '070000', '-1', '+1024', '1024.0', '0x400', ' 1024', '1024 ', '', 'http', '99999999999'];
  const out: Case[] = [];
  for (const f of ['http-port', 'https-port', 'api-port']) {
    for (const v of inputs) {
      out.push({
        what: `${f} ${JSON.stringify(v)}`,
        // The CLI's parse (create, the TUI form and import-csv take the same minimum).
        ts: () => tsVerdict(() => parsePort(f, v, MIN_CLUSTER_PORT)),
        bash: ['kd_check_port', f, v],
        text: 'same',
        ok: edges.map(String).includes(v) ? Number(v) >= MIN_CLUSTER_PORT && Number(v) <= PORT_MAX : undefined,
      });
    }
  }
  // The three together: each a port, then all different (the later flag is named), as `kindler create` checks them.
  const triples: [string, string, string, boolean?][] = [
    ['2000', '2001', '2002', true], ['2000', '2000', '2002', false], ['2000', '2001', '2000', false], ['2000', '2001', '2001', false],
    ['2000', '2000', '2000', false], ['80', '2000', '2000', false], ['2000', '2000', '70000', false], ['02000', '2000', '2001', false],
    ['1024', '65535', '1025', true], ['1023', '1023', '1023', false],
  ];
  for (const [h, s, api, ok] of triples) {
    out.push({
      what: `ports ${h} ${s} ${api}`,
      ts: () => tsVerdict(() => {
        const httpPort = parsePort('http-port', h, MIN_CLUSTER_PORT);
        const httpsPort = parsePort('https-port', s, MIN_CLUSTER_PORT);
        const apiPort = parsePort('api-port', api, MIN_CLUSTER_PORT);
        checkCreateRequest({ name: 'dev', provider: 'k3d', servers: 1, agents: 0, httpPort, httpsPort, apiPort });
      }),
      bash: ['kd_check_cluster_ports', `http-port=${h}`, `https-port=${s}`, `api-port=${api}`],
      text: 'field',
      ok,
    });
  }
  return out;
}

function waitTimeoutCases(): Case[] {
  const { min, max } = WAIT_TIMEOUT_SECONDS;
  return [min - 1, min, 180, max, max + 1, 100_000, 999_999].map((n) => ({
    what: `wait-timeout ${n}`,
    ts: () => configVerdict({ waitTimeoutSeconds: n }, 'waitTimeoutSeconds', 'wait-timeout'),
    bash: ['kd_check_wait_timeout', 'wait-timeout', String(n)],
    text: 'same',
    ok: n >= min && n <= max,
  }));
}

function apiAddressCases(): Case[] {
  const inputs: [string, boolean?][] = [
    ['127.0.0.1', true], ['192.168.1.10', true], ['10.0.0.1', true], ['255.255.255.254', true], ['1.2.3.4', true],
    ...API_ADDRESS_REFUSED.map((x): [string, boolean] => [x, false]),
    ['256.1.1.1', false], ['01.2.3.4', false], ['1.2.3.04', false], ['1.2.3', false], ['1.2.3.4.5', false], [' 1.2.3.4', false], ['1.2.3.4 ', false],
    ['1.2.3.4\n', false], ['::1', false], ['', false], ['localhost', false], ['1.2.3.-4', false], ['1.2.3.4/32', false],
  ];
  return inputs.map(([v, ok]) => ({
    what: `api address ${JSON.stringify(v)}`,
    ts: () => configVerdict({ api: { publicAddress: v } }, 'api.publicAddress', 'api-address'),
    bash: ['kd_check_api_address', 'api-address', v],
    text: 'same',
    ok,
  }));
}

function providerCases(): Case[] {
  return ['k3d', 'kind', 'K3D', 'Kind', 'minikube', '', ' k3d', 'k3d ', 'all', 'k3d\n'].map((v) => ({
    what: `provider ${JSON.stringify(v)}`,
    ts: () => tsVerdict(() => parseProvider(v)),
    bash: ['kd_check_provider', 'provider', v],
    text: 'field',
    ok: (PROVIDERS as readonly string[]).includes(v),
  }));
}

// ---- the tests -------------------------------------------------------------------------------------

test(`${RULES_SH} is what tools/gen-rules.ts writes from src/core today (else: npm run gen:rules)`, () => {
  const want = renderRulesSh();
  const have = readFileSync(join(ROOT, RULES_SH), 'utf8');
  if (have !== want) {
    const w = want.split('\n');
    const h = have.split('\n');
    const i = w.findIndex((l, k) => l !== h[k]);
    assert.fail(
      `${RULES_SH} is stale: a rule in src/core changed without regenerating it. Run \`npm run gen:rules\` and commit ${RULES_SH}.\n` +
        `first difference, line ${i + 1}:\n  checked in: ${JSON.stringify(h[i])}\n  generated:  ${JSON.stringify(w[i])}`,
    );
  }
  assert.match(have, /^# scripts\/lib\/rules\.sh - GENERATED by tools\/gen-rules\.ts \(`npm run gen:rules`\)/m);
  // Data only: every line is a comment, blank, or a declaration.
  for (const line of have.split('\n')) assert.match(line, /^(#.*|declare -gr[aA]? KD_RULE_[A-Z0-9_]+=.*|)$/, line);
  // The npm script's check mode agrees (exit 0), and refuses an unknown argument.
  const check = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'tools', 'gen-rules.ts'), '--check'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'tools', 'gen-rules.ts'), '--force'], { cwd: ROOT, encoding: 'utf8' });
  assert.deepEqual([bad.status, bad.stderr], [2, 'error: --force: unknown argument (usage: gen-rules.ts [--check])\n']);
});

test('the TypeScript and the bash validators agree on names, images, subnets, counts, ports, wait timeouts, API addresses and providers', (t) => {
  const tables = { names: nameCases(), images: imageCases(), subnets: subnetCases(), counts: countCases(), ports: portCases(), waitTimeouts: waitTimeoutCases(), apiAddresses: apiAddressCases(), providers: providerCases() };
  const all = Object.values(tables).flat();
  const t0 = performance.now();
  const bad = disagreements(all);
  const ms = performance.now() - t0;
  assert.deepEqual(bad, [], `${bad.length} of ${all.length} inputs:\n${bad.join('\n')}`);
  t.diagnostic(`${all.length} inputs (${Object.entries(tables).map(([k, v]) => `${k} ${v.length}`).join(', ')}), bash side in one process: ${ms.toFixed(0)} ms`);
  // The table reaches both outcomes everywhere (a table that only ever accepts proves little).
  for (const [k, cases] of Object.entries(tables)) {
    const verdicts = cases.map((c) => c.ts().ok);
    assert.ok(verdicts.includes(true) && verdicts.includes(false), `${k}: both accepted and refused inputs`);
  }
});

/** Rules unlike today's in every value: the bash validators must follow them. */
const OTHER: Rules = {
  ...currentRules(),
  providers: ['k3d', 'kind', 'mk'],
  nameLimit: { k3d: 10, kind: 12, mk: 5 },
  nameLimitRule: { k3d: 'k3d rule', kind: 'kind rule', mk: 'mk rule' },
  existingNameLimit: { k3d: 11, kind: 14, mk: 6 },
  existingNameLimitRule: { k3d: 'k3d old', kind: 'kind old', mk: 'mk old' },
  nameFirstChars: 'a-m',
  nameChars: 'a-m0-9_',
  nameNoEnd: '_',
  nameNoRun: '__',
  reservedNames: ['mama', 'mmm'],
  reservedNameRule: 'test reserved',
  counts: { servers: { min: 2, max: 3 }, agents: { min: 1, max: 4 } },
  countDigits: 2,
  minClusterPort: 3000,
  portMax: 4000,
  portDigits: 4,
  waitTimeout: { min: 5, max: 500 },
  imageMax: 12,
  imagePattern: '^[a-z]+$',
  imageRule: 'test image rule',
  subnetPrefix: { min: 12, max: 20 },
  specialSubnets: [{ cidr: '10.0.0.0/8', what: 'a test range' }],
  apiAddressRefused: ['10.9.9.9'],
  apiAddressRule: 'test address rule',
};

test('the bash validators take every limit from rules.sh: a rules.sh with other values moves every edge', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'lib'));
  for (const f of ['create_env.sh', 'delete_env.sh', 'cluster.sh']) copyFileSync(join(ROOT, 'scripts', f), join(dir, f));
  copyFileSync(join(LIB, 'common.sh'), join(dir, 'lib', 'common.sh'));
  writeFileSync(join(dir, 'lib', 'rules.sh'), renderRulesSh(OTHER));

  const cases: [string[], string | null][] = [
    [['kd_check_name', a(10), 'k3d', 'new'], null],
    [['kd_check_name', a(11), 'k3d', 'new'], 'name: must be at most 10 characters for k3d: k3d rule (got 11)'],
    [['kd_check_name', a(11), 'k3d'], null],
    [['kd_check_name', a(12), 'k3d'], 'name: must be at most 11 characters for k3d: k3d old (got 12)'],
    [['kd_check_name', a(12), 'kind', 'new'], null],
    [['kd_check_name', a(13), 'kind', 'new'], 'name: must be at most 12 characters for kind: kind rule (got 13)'],
    [['kd_check_name', a(14), 'kind'], null],
    [['kd_check_name', a(15), 'kind'], 'name: must be at most 14 characters for kind: kind old (got 15)'],
    [['kd_check_name', a(6), 'mk', 'new'], 'name: must be at most 5 characters for mk: mk rule (got 6)'],
    [['kd_check_name', 'mama', 'k3d', 'new'], 'name: "mama" is reserved (test reserved)'],
    [['kd_check_name', 'mama', 'k3d'], null],
    [['kd_check_name', 'head', 'k3d', 'new'], null],
    [['kd_check_name', 'abc_d', 'k3d', 'new'], null],
    [['kd_check_name', 'abc-d', 'k3d', 'new'], `name: ${OTHER.nameCharsRule}`],
    [['kd_check_name', 'nab', 'k3d', 'new'], `name: ${OTHER.nameFirstRule}`],
    [['kd_check_name', 'ab_', 'k3d', 'new'], 'name: must not end with "_"'],
    [['kd_check_name', 'a__b', 'k3d', 'new'], 'name: must not contain "__"'],
    [['kd_check_name', 'a--b', 'k3d', 'new'], `name: ${OTHER.nameCharsRule}`],
    [['kd_check_count', 'servers', '1'], 'servers: must be a whole number 2-3'],
    [['kd_check_count', 'servers', '2'], null],
    [['kd_check_count', 'servers', '03'], null],
    [['kd_check_count', 'servers', '003'], 'servers: must be a whole number 2-3'],
    [['kd_check_count', 'servers', '4'], 'servers: must be a whole number 2-3'],
    [['kd_check_count', 'agents', '0'], 'agents: must be a whole number 1-4'],
    [['kd_check_count', 'agents', '4'], null],
    [['kd_check_count', 'agents', '5'], 'agents: must be a whole number 1-4'],
    [['kd_check_port', 'http-port', '2999'], 'http-port: must be a port number 3000-4000'],
    [['kd_check_port', 'http-port', '3000'], null],
    [['kd_check_port', 'http-port', '4000'], null],
    [['kd_check_port', 'http-port', '03000'], 'http-port: must be a port number 3000-4000'],
    [['kd_check_port', 'http-port', '4001'], 'http-port: must be a port number 3000-4000'],
    [['kd_check_wait_timeout', 'wait-timeout', '4'], 'wait-timeout: must be a whole number 5-500'],
    [['kd_check_wait_timeout', 'wait-timeout', '500'], null],
    [['kd_check_wait_timeout', 'wait-timeout', '0500'], 'wait-timeout: must be a whole number 5-500'],
    [['kd_check_wait_timeout', 'wait-timeout', '501'], 'wait-timeout: must be a whole number 5-500'],
    [['kd_check_image', 'image', a(12)], null],
    [['kd_check_image', 'image', a(13)], 'image: test image rule'],
    [['kd_check_image', 'image', 'a1'], 'image: test image rule'],
    [['kd_check_subnet', 'subnet', '10.16.0.0/12'], 'subnet: must not overlap a special-purpose range (10.0.0.0/8 is a test range)'],
    [['kd_check_subnet', 'subnet', '127.0.0.0/12'], null],
    [['kd_check_subnet', 'subnet', '172.0.0.0/11'], 'subnet: prefix length must be 12-20'],
    [['kd_check_subnet', 'subnet', '172.16.0.0/20'], null],
    [['kd_check_subnet', 'subnet', '172.16.0.0/21'], 'subnet: prefix length must be 12-20'],
    [['kd_check_api_address', 'api-address', '10.9.9.9'], 'api-address: test address rule'],
    [['kd_check_api_address', 'api-address', '0.0.0.0'], null],
    [['kd_check_provider', 'provider', 'mk'], null],
    [['kd_check_provider', 'provider', 'x'], 'provider: must be k3d, kind or mk'],
    [['kd_check_provider', 'provider', 'x', 'all'], 'provider: must be k3d, kind, mk or all'],
  ];
  const got = bashVerdicts(cases.map(([c]) => c), join(dir, 'lib'));
  cases.forEach(([call, want], i) => {
    const g = got[i]!;
    assert.equal(g.ok ? null : `${g.field}: ${g.rule}`, want, JSON.stringify(call));
  });

  // The scripts themselves hold no limit either: create_env.sh with these rules.
  const kc = join(dir, 'never.yaml');
  const create = (extra: string[], provider = 'k3d') => spawnSync('bash', [join(dir, 'create_env.sh'), '--provider', provider, '--servers', '2', '--agents', '1',
    '--http-port', '3001', '--https-port', '3002', '--api-port', '3003', '--kubeconfig', kc, ...extra], { encoding: 'utf8' });
  const mk = create(['--name', 'abcdef'], 'mk');
  assert.deepEqual([mk.status, mk.stderr], [2, 'error: --name: must be at most 5 characters for mk: mk rule (got 6)\n']);
  for (const [extra, line] of [
    [['--wait-timeout', '501'], 'error: --wait-timeout: must be a whole number 5-500\n'],
    [['--wait-timeout', '7', '--image', 'x1'], 'error: --image: test image rule\n'],
    [['--subnet', '10.1.0.0/16'], 'error: --subnet: must not overlap a special-purpose range (10.0.0.0/8 is a test range)\n'],
    [['--api-address', '10.9.9.9'], 'error: --api-address: test address rule\n'],
  ] as [string[], string][]) {
    const r = create(['--name', 'abc', ...extra]);
    assert.deepEqual([r.status, r.stderr, r.stdout], [2, line, ''], extra.join(' '));
  }
  // Defaults are not rules: the default servers (1) is below this rules.sh's minimum.
  const r = spawnSync('bash', [join(dir, 'create_env.sh'), '--name', 'abc', '--provider', 'k3d', '--http-port', '3001', '--https-port', '3002', '--api-port', '3003', '--kubeconfig', kc], { encoding: 'utf8' });
  assert.deepEqual([r.status, r.stderr], [2, 'error: --servers: must be a whole number 2-3\n']);
  assert.ok(!existsSync(kc));

  // Without rules.sh a script fails at once with an error marker (exit 1), before doing anything.
  rmSync(join(dir, 'lib', 'rules.sh'));
  const none = spawnSync('bash', [join(dir, 'cluster.sh'), 'list'], { encoding: 'utf8' });
  assert.equal(none.status, 1, none.stderr);
  assert.equal(none.stdout, `::kindler:error cannot read ${join(dir, 'lib')}/rules.sh (the input rules, generated by npm run gen:rules): the installation is incomplete\n`);
});

test('a reserved name: create_env.sh refuses it (exit 2, nothing run); delete_env.sh and cluster.sh act on such a cluster; adopt takes it, create does not', async (t) => {
  const w = makeWorld();
  t.after(() => w.cleanup());
  const env = scriptEnv(w);
  const script = (name: string, args: string[]) => spawnSync('bash', [join(ROOT, 'scripts', name), ...args], { env, encoding: 'utf8' });
  const kc = join(w.dir, 'admin.yaml');
  for (const provider of PROVIDERS as readonly Provider[]) {
    const before = w.calls();
    const create = script('create_env.sh', ['--name', 'admin', '--provider', provider, '--http-port', '20001', '--https-port', '20002', '--api-port', '20003', '--kubeconfig', kc]);
    assert.deepEqual([create.status, create.stdout, create.stderr], [2, '', 'error: --name: "admin" is reserved (kindler itself, its static routes or git use it)\n']);
    assert.equal(w.calls(), before, 'no tool was called');
    const status = script('cluster.sh', ['status', '--name', 'admin', '--provider', provider]);
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /::kindler:result \{"name":"admin","provider":"[a-z0-9]+","state":"absent"/);
    const del = script('delete_env.sh', ['--name', 'admin', '--provider', provider, '--kubeconfig', kc]);
    assert.equal(del.status, 0, del.stderr);
    assert.match(del.stdout, /::kindler:result \{"name":"admin","provider":"[a-z0-9]+","deleted":false\}/);
    const stop = script('cluster.sh', ['stop', '--name', 'admin', '--provider', provider]);
    assert.equal(stop.status, 1, 'not a usage error: the cluster is simply not there');
    assert.match(stop.stdout, /::kindler:error cluster admin does not exist/);
  }
  // A privileged port is refused by the script as by the engine.
  const low = script('create_env.sh', ['--name', 'dev', '--provider', 'k3d', '--http-port', '80', '--https-port', '20002', '--api-port', '20003', '--kubeconfig', kc]);
  assert.deepEqual([low.status, low.stderr], [2, `error: --http-port: must be a port number ${MIN_CLUSTER_PORT}-${PORT_MAX}\n`]);
  assert.ok(!existsSync(kc));
});

test('the engine: create refuses a reserved name; adopt holds a name to the rule for existing clusters (the scripts\' rule)', async (t) => {
  const { engine } = await withEngine(t);
  const r = await verb(engine, ['create', 'admin']);
  assert.deepEqual([r.code, r.err], [2, 'error: name: "admin" is reserved (kindler itself, its static routes or git use it)\n']);
  const cases: [string[], number, RegExp][] = [
    // Accepted names: the provider simply has no such cluster (exit 3), the same answer as for any other name.
    [['adopt', 'admin'], 3, /^error: cluster: k3d has no cluster named "admin"$/],
    [['adopt', a(41), '--provider', 'kind'], 3, /has no cluster named/],
    [['adopt', a(63), '--provider', 'kind'], 3, /has no cluster named/],
    // Refused up front, as cluster.sh would refuse them.
    [['adopt', a(64), '--provider', 'kind'], 2, /^error: name: must be at most 63 characters for kind: a DNS label \(got 64\)$/],
    [['adopt', a(33), '--provider', 'k3d'], 2, /^error: name: must be at most 32 characters for k3d: k3d's own limit for cluster names \(got 33\)$/],
    [['adopt', 'dev-'], 2, /^error: name: must not end with "-"$/],
    [['adopt', 'a--b'], 2, /^error: name: must not contain "--"$/],
  ];
  for (const [argv, code, re] of cases) {
    const x = await verb(engine, argv);
    assert.equal(x.code, code, `${argv.join(' ')}: ${x.out}${x.err}`);
    assert.match(x.err.trimEnd(), re, argv.join(' '));
    assert.equal(x.err.trimEnd().split('\n').length, 1);
  }
  assert.deepEqual(engine.listClusters(), []);
});
