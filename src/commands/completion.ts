/**
 * Shell completion: `kindler completion bash|zsh|fish` prints a script; the script asks
 * `kindler __complete WORD…` (the words typed after `kindler`, the last one being completed) for
 * the candidates, one a line. Verbs and flags come from the verb table the parser uses; cluster
 * names and task ids from the engine (through the daemon when one runs; none without it).
 */
import { COMMON_FLAGS, type VerbSpec } from './parse.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** Names the engine knows, asked only when a word needs them. */
export interface Names {
  clusters: () => string[];
  tasks: () => string[];
}

/** Values a flag or argument takes, where they are a fixed set. */
const FLAG_VALUES: Record<string, string[]> = { provider: ['k3d', 'kind'], role: ['viewer', 'operator', 'admin'] };
const USERS_ACTIONS = ['list', 'add', 'remove', 'set-role', 'add-key', 'remove-key'];

/**
 * The candidates for the last of `words` (the words after `kindler`), filtered by its prefix.
 * `extraVerbs` are verbs outside the table (daemon).
 */
export function complete(specs: readonly VerbSpec[], words: readonly string[], names: Names, extraVerbs: readonly string[] = ['daemon']): string[] {
  const cur = words.length ? words[words.length - 1]! : '';
  const before = words.slice(0, -1);
  const visible = specs.filter((v) => !v.hidden);
  const pick = (list: Iterable<string>) => [...new Set(list)].filter((w) => w.startsWith(cur)).sort();
  const verbs = [...visible.map((v) => v.name), ...extraVerbs, 'help'];
  if (before.length === 0) return pick(verbs);
  const verbName = before[0]!;
  if (verbName === 'help') return before.length === 1 ? pick(verbs.filter((v) => v !== 'help')) : [];
  const spec = visible.find((v) => v.name === verbName);
  if (!spec) return [];
  const flags = { ...spec.flags, ...COMMON_FLAGS };
  // The word before is a flag that takes a value: complete the value.
  const prev = before[before.length - 1]!;
  if (before.length > 1 && prev.startsWith('--') && !prev.includes('=')) {
    const name = prev.slice(2);
    const f = flags[name];
    if (f?.type === 'string') {
      if (FLAG_VALUES[name]) return pick(FLAG_VALUES[name]);
      if (name === 'cluster') return pick(safe(names.clusters));
      return [];
    }
  }
  if (cur.startsWith('-')) return pick(Object.keys(flags).map((k) => `--${k}`));
  // Which positional argument is being typed: count the positionals before it (skipping flag values).
  let n = 0;
  for (let i = 1; i < before.length; i++) {
    const w = before[i]!;
    if (w.startsWith('--')) {
      const f = flags[w.slice(2)];
      if (f?.type === 'string' && !w.includes('=')) i++;
      continue;
    }
    if (w.startsWith('-')) continue;
    n++;
  }
  const arg = spec.args[n];
  if (!arg) return [];
  if (spec.name === 'users') {
    if (arg.name === 'action') return pick(USERS_ACTIONS);
    if (arg.name === 'value' && before[1] === 'set-role') return pick(FLAG_VALUES.role!);
    return [];
  }
  if (spec.name === 'completion') return pick(SHELLS);
  if (spec.name === 'adopt' || spec.name === 'create') return [];
  if (arg.name === 'name') return pick(safe(names.clusters));
  if (arg.name === 'id') return pick(safe(names.tasks));
  if (arg.name === 'ref') return pick([...safe(names.tasks), ...safe(names.clusters)]);
  return [];
}

/** A name source that fails gives no names: completion stays quiet. */
function safe(f: () => string[]): string[] {
  try {
    return f().filter((s) => /^[A-Za-z0-9._-]+$/.test(s));
  } catch {
    return [];
  }
}

/** The completion script for `shell`. */
export function completionScript(shell: Shell): string {
  switch (shell) {
    case 'bash':
      return `# kindler completion for bash: source it, or save it as
#   ~/.local/share/bash-completion/completions/kindler
_kindler_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local IFS=$'\\n'
  COMPREPLY=( $(compgen -W "$(command kindler __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "$cur") )
}
complete -o default -F _kindler_complete kindler
`;
    case 'zsh':
      return `#compdef kindler
# kindler completion for zsh: save it as _kindler in a directory on $fpath (before compinit runs),
# or source it after compinit.
_kindler() {
  local -a cands
  cands=( \${(f)"$(command kindler __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)"} )
  (( \${#cands} )) && compadd -Q -- "\${cands[@]}"
}
if (( $+functions[compdef] )); then
  compdef _kindler kindler
fi
`;
    case 'fish':
      return `# kindler completion for fish: save it as ~/.config/fish/completions/kindler.fish
function __kindler_complete
    set -l toks (commandline -opc)
    set -e toks[1]
    command kindler __complete $toks (commandline -ct) 2>/dev/null
end
complete -c kindler -f -a '(__kindler_complete)'
`;
  }
}
