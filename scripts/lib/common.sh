# shellcheck shell=bash
# shellcheck disable=SC2034 # KD_* results are read by the scripts that source this file
# scripts/lib/common.sh - shared by every kindler provisioning script (sourced, never run).
#
# Gives: strict mode, flag parsing and validation, the ::kindler: marker lines, JSON output,
# running provider tools (stderr streamed live and kept for the error marker), signal/exit traps
# with a per-script cleanup hook, host port probes, and the one definition of a cluster's state
# as the provider sees it (docker labels). The contract is described in scripts/README.md.
#
# Rules kept here: every command's status is checked explicitly; nothing writes kindler's state;
# nothing touches the user's kubeconfig (KUBECONFIG points at a throwaway file for every tool).
#
# The input rules themselves (name limits, reserved names, image, subnet, count, port, wait-timeout and
# API-address rules) are not written here: lib/rules.sh, generated from the TypeScript in src/core by
# `npm run gen:rules`, holds them as data, and the kd_check_* validators below use only that.

set -Eeuo pipefail
shopt -s inherit_errexit extglob
umask 077
export LC_ALL=C

readonly KD_MARK='::kindler:'
KD_SCRIPT=${0##*/}
KD_MAIN_PID=$BASHPID
KD_TMP=""            # per-run temp dir (kd_init), removed on exit
KD_FIFO=""           # stderr fifo used by kd_run
KD_CHILD=""          # pid of the tool kd_run is waiting for
KD_TEE=""            # pid of the tee that copies its stderr
KD_RC=0              # exit status of the last kd_run
KD_LAST_ERROR=""     # most telling stderr line of the last kd_run (one line)
KD_ERR_PRINTED=0     # an ::kindler:error line was printed
KD_STEP_DESC=""      # "step 2/5 (create-cluster)" for messages
declare -gA KD_FLAG=()

# ---------------------------------------------------------------------------------------------
# Text helpers

# kd_oneline TEXT: sets REPLY to TEXT as one clean line (ANSI colours removed, control characters
# turned into spaces, runs of spaces squeezed, trimmed, at most 600 characters keeping the end).
# Only the last 4096 characters are looked at (the result keeps the end), and no extglob run pattern
# is used: bash matches those in quadratic time, and a tool's 10 MB line would stall the script.
kd_oneline() {
  local s=$1
  if ((${#s} > 4096)); then
    s=${s:${#s}-4096}
  fi
  s=${s//$'\e'\[*([0-9;?])[a-zA-Z]/}
  s=${s//[[:cntrl:]]/ }
  while [[ $s == *'  '* ]]; do
    s=${s//'  '/ }
  done
  s=${s#' '}
  s=${s%' '}
  if ((${#s} > 600)); then
    s="...${s: -597}"
  fi
  REPLY=$s
}

# kd_json_str TEXT: sets REPLY to TEXT as a JSON string literal (with the quotes).
kd_json_str() {
  local s=$1 out="" c i code
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  if [[ $s == *[[:cntrl:]]* ]]; then
    for ((i = 0; i < ${#s}; i++)); do
      c=${s:i:1}
      case $c in
        $'\n') out+='\n' ;;
        $'\r') out+='\r' ;;
        $'\t') out+='\t' ;;
        [[:cntrl:]])
          printf -v code '%d' "'$c"
          printf -v c '\\u%04x' "$code"
          out+=$c
          ;;
        *) out+=$c ;;
      esac
    done
    s=$out
  fi
  REPLY="\"$s\""
}

# kd_json_obj TYPE KEY VALUE ...: sets REPLY to a one-line JSON object. TYPE is s (string),
# n (number, must be digits), b (true/false) or r (raw JSON, already encoded).
kd_json_obj() {
  local out="" sep="" type key val
  while (($# >= 3)); do
    type=$1 key=$2 val=$3
    shift 3
    kd_json_str "$key"
    out+="$sep$REPLY:"
    case $type in
      s) kd_json_str "$val"; out+=$REPLY ;;
      n)
        [[ $val =~ ^-?[0-9]+$ ]] || kd_internal "kd_json_obj: $key is not a number: $val"
        out+=$val
        ;;
      b)
        [[ $val == true || $val == false ]] || kd_internal "kd_json_obj: $key is not a boolean: $val"
        out+=$val
        ;;
      r) out+=$val ;;
      *) kd_internal "kd_json_obj: unknown type $type" ;;
    esac
    sep=","
  done
  (($# == 0)) || kd_internal "kd_json_obj: odd argument count"
  REPLY="{$out}"
}

# ---------------------------------------------------------------------------------------------
# Markers (stdout)

kd_marker() { printf '%s%s\n' "$KD_MARK" "$1"; }

# kd_step N TOTAL KEY TITLE
kd_step() {
  KD_STEP_DESC="step $1/$2 ($3)"
  kd_oneline "$4"
  kd_marker "step $1/$2 $3 $REPLY"
}

kd_note() {
  kd_oneline "$1"
  kd_marker "note $REPLY"
}

kd_error() {
  kd_oneline "$1"
  KD_ERR_PRINTED=1
  kd_marker "error $REPLY"
}

kd_result() { kd_marker "result $1"; }

# kd_die MESSAGE [RC]: print the error marker and exit with RC (default 1; never 0).
kd_die() {
  local rc=${2:-1}
  if [[ ! $rc =~ ^[0-9]+$ ]] || ((rc == 0)); then
    rc=1
  fi
  kd_error "$1"
  exit "$rc"
}

kd_internal() { kd_die "internal error in $KD_SCRIPT: $1" 1; }

# ---------------------------------------------------------------------------------------------
# The input rules (generated data, see the header of rules.sh)

KD_LIB=${BASH_SOURCE[0]%/*}
if [[ $KD_LIB == "${BASH_SOURCE[0]}" ]]; then
  KD_LIB=.
fi
if [[ -f $KD_LIB/rules.sh && -r $KD_LIB/rules.sh ]]; then
  # shellcheck source=rules.sh
  source "$KD_LIB/rules.sh"
else
  kd_die "cannot read $KD_LIB/rules.sh (the input rules, generated by npm run gen:rules): the installation is incomplete"
fi

# ---------------------------------------------------------------------------------------------
# Flags

# kd_usage_error FLAG RULE: the one usage line on stderr, exit 2.
kd_usage_error() {
  local flag=$1
  flag=${flag//[[:cntrl:]]/?}
  if ((${#flag} > 60)); then
    flag="${flag:0:60}..."
  fi
  local rule=${2//[[:cntrl:]]/?}
  printf 'error: %s: %s\n' "$flag" "$rule" >&2
  exit 2
}

# kd_parse_flags ALLOWED... -- ARGS...: fills KD_FLAG[name]=value from "--name value" or
# "--name=value". Every flag takes a value; unknown, repeated or value-less flags and any
# positional argument are usage errors. -h/--help calls kd_usage (defined by the script).
kd_parse_flags() {
  local -A allowed=()
  while (($#)) && [[ $1 != -- ]]; do
    allowed[$1]=1
    shift
  done
  (($#)) || kd_internal "kd_parse_flags: missing --"
  shift
  local arg key val
  while (($#)); do
    arg=$1
    case $arg in
      -h | --help)
        kd_usage
        exit 0
        ;;
      --?*=*)
        key=${arg%%=*}
        key=${key#--}
        val=${arg#*=}
        shift
        [[ -n ${allowed[$key]+x} ]] || kd_usage_error "--$key" "unknown flag"
        ;;
      --?*)
        key=${arg#--}
        shift
        [[ -n ${allowed[$key]+x} ]] || kd_usage_error "--$key" "unknown flag"
        (($#)) || kd_usage_error "--$key" "requires a value"
        val=$1
        shift
        ;;
      *) kd_usage_error "$arg" "unexpected argument (only --flag VALUE is accepted)" ;;
    esac
    [[ -z ${KD_FLAG[$key]+x} ]] || kd_usage_error "--$key" "given more than once"
    [[ -n $val ]] || kd_usage_error "--$key" "requires a non-empty value"
    [[ $val != -* ]] || kd_usage_error "--$key" "requires a value (got another flag or a value starting with '-')"
    KD_FLAG[$key]=$val
  done
}

kd_has() { [[ -n ${KD_FLAG[$1]+x} ]]; }

# kd_require FLAG...: each must have been given.
kd_require() {
  local f
  for f in "$@"; do
    kd_has "$f" || kd_usage_error "--$f" "is required"
  done
}

# Validators: each exits 2 with one line naming the flag and the rule when the value breaks it. Every
# limit, pattern and list comes from lib/rules.sh (KD_RULE_*), never from a literal here.

# kd_or_list WORD...: sets REPLY to "a, b or c".
kd_or_list() {
  REPLY=$1
  shift
  while (($# > 1)); do
    REPLY+=", $1"
    shift
  done
  if (($#)); then
    REPLY+=" or $1"
  fi
}

kd_check_provider() { # FLAG VALUE [all]: one of KD_RULE_PROVIDERS (or `all`, when allowed)
  local -a allowed=("${KD_RULE_PROVIDERS[@]}")
  local p
  if [[ ${3:-} == all ]]; then
    allowed+=(all)
  fi
  for p in "${allowed[@]}"; do
    if [[ $2 == "$p" ]]; then
      return 0
    fi
  done
  kd_or_list "${allowed[@]}"
  kd_usage_error "--$1" "must be $REPLY"
}

# kd_check_name VALUE PROVIDER [new]: with `new` (a cluster about to be created, create_env.sh) the
# provider's KD_RULE_NAME_LIMIT (k3d: its own limit; kind: its node container
# NAME-external-load-balancer is also the node's hostname, and sethostname fails beyond 63), and a
# reserved name is refused. Without it (a cluster that exists already: delete, start, stop, status,
# import-image, adopt) the limit is KD_RULE_EXISTING_NAME_LIMIT (a kind cluster with a single control
# plane can have any DNS label), and a reserved name is accepted: kindler never creates one, but a
# cluster made by hand with k3d or kind can carry it and be adopted, and it must then stay deletable
# and inspectable. The daemon holds names to the same rules (src/core/names.ts).
kd_check_name() {
  local name=$1 provider=$2 use=${3:-existing} limit why r re
  [[ -n ${KD_RULE_NAME_LIMIT[$provider]+x} ]] || kd_internal "kd_check_name: unknown provider $provider"
  if [[ $use == new ]]; then
    limit=${KD_RULE_NAME_LIMIT[$provider]} why=${KD_RULE_NAME_LIMIT_RULE[$provider]}
  elif [[ $use == existing ]]; then
    limit=${KD_RULE_EXISTING_NAME_LIMIT[$provider]} why=${KD_RULE_EXISTING_NAME_LIMIT_RULE[$provider]}
  else
    kd_internal "kd_check_name: unknown use $use"
  fi
  # The characters before the length: ${#name} counts bytes (LC_ALL=C), the same as characters only for ASCII.
  [[ -n $name ]] || kd_usage_error --name "$KD_RULE_NAME_EMPTY_RULE"
  re="^[$KD_RULE_NAME_FIRST_CHARS]"
  [[ $name =~ $re ]] || kd_usage_error --name "$KD_RULE_NAME_FIRST_RULE"
  re="^[$KD_RULE_NAME_CHARS]+\$"
  [[ $name =~ $re ]] || kd_usage_error --name "$KD_RULE_NAME_CHARS_RULE"
  ((${#name} <= limit)) || kd_usage_error --name "must be at most $limit characters for $provider: $why (got ${#name})"
  [[ $name != *"$KD_RULE_NAME_NO_END" ]] || kd_usage_error --name "must not end with \"$KD_RULE_NAME_NO_END\""
  [[ $name != *"$KD_RULE_NAME_NO_RUN"* ]] || kd_usage_error --name "must not contain \"$KD_RULE_NAME_NO_RUN\""
  if [[ $use == new ]]; then
    for r in "${KD_RULE_RESERVED_NAMES[@]}"; do
      if [[ $name == "$r" ]]; then
        kd_usage_error --name "\"$name\" is reserved ($KD_RULE_RESERVED_NAME_RULE)"
      fi
    done
  fi
}

# kd_check_int FLAG VALUE MIN MAX DIGITS [WHAT]: decimal digits only (at most DIGITS of them, leading zeros
# included), MIN <= value <= MAX; else "must be WHAT MIN-MAX" (WHAT defaults to "a whole number").
kd_check_int() {
  local re="^[0-9]{1,$5}\$"
  if [[ $2 =~ $re ]] && ((10#$2 >= $3 && 10#$2 <= $4)); then :; else
    kd_usage_error "--$1" "must be ${6:-a whole number} $3-$4"
  fi
}

kd_check_count() { # FLAG VALUE: servers or agents
  [[ -n ${KD_RULE_COUNT_MIN[$1]+x} ]] || kd_internal "kd_check_count: no rule for $1"
  kd_check_int "$1" "$2" "${KD_RULE_COUNT_MIN[$1]}" "${KD_RULE_COUNT_MAX[$1]}" "$KD_RULE_COUNT_DIGITS"
}

# kd_check_port FLAG VALUE: a host port a cluster publishes. Ports below KD_RULE_MIN_CLUSTER_PORT are
# privileged and belong to the host's own services; the daemon refuses them too (given, recorded,
# allocated and adopted ports alike), so a script called directly agrees with it.
kd_check_port() {
  kd_check_int "$1" "$2" "$KD_RULE_MIN_CLUSTER_PORT" "$KD_RULE_PORT_MAX" "$KD_RULE_PORT_DIGITS" "a port number"
}

# kd_check_cluster_ports FLAG=VALUE...: each a port (kd_check_port, in the order given), then all
# different: a value equal to an earlier one is refused naming the later flag.
kd_check_cluster_ports() {
  local -a flags=() values=()
  local spec i j
  for spec in "$@"; do
    flags+=("${spec%%=*}")
    values+=("${spec#*=}")
    kd_check_port "${flags[-1]}" "${values[-1]}"
  done
  for ((i = 1; i < ${#values[@]}; i++)); do
    for ((j = 0; j < i; j++)); do
      if ((10#${values[i]} == 10#${values[j]})); then
        kd_usage_error "--${flags[i]}" "must differ from --${flags[j]} (both $((10#${values[i]})))"
      fi
    done
  done
}

kd_check_wait_timeout() { # FLAG VALUE: seconds
  kd_check_int "$1" "$2" "$KD_RULE_WAIT_TIMEOUT_MIN" "$KD_RULE_WAIT_TIMEOUT_MAX" "$KD_RULE_WAIT_TIMEOUT_DIGITS"
}

kd_check_path() { # FLAG VALUE
  [[ $2 == /* ]] || kd_usage_error "--$1" "must be an absolute path"
  [[ $2 != */ ]] || kd_usage_error "--$1" "must name a file, not a directory"
  [[ $2 != *[[:cntrl:]]* ]] || kd_usage_error "--$1" "must not contain control characters"
  [[ /$2/ != */../* && /$2/ != */./* ]] || kd_usage_error "--$1" "must not contain '.' or '..' components"
}

kd_check_image() { # FLAG VALUE
  if ((${#2} <= KD_RULE_IMAGE_MAX)) && [[ $2 =~ $KD_RULE_IMAGE_PATTERN ]]; then :; else
    kd_usage_error "--$1" "$KD_RULE_IMAGE_RULE"
  fi
}

kd_check_subnet() { # FLAG VALUE: an IPv4 CIDR, network address, prefix in range, no special-purpose overlap
  [[ $2 =~ $KD_RULE_CIDR_PATTERN ]] || kd_usage_error "--$1" "must be an IPv4 CIDR like 10.101.0.0/16"
  local o1=$((10#${BASH_REMATCH[1]})) o2=$((10#${BASH_REMATCH[2]})) o3=$((10#${BASH_REMATCH[3]}))
  local o4=$((10#${BASH_REMATCH[4]})) p=$((10#${BASH_REMATCH[5]}))
  ((o1 <= 255 && o2 <= 255 && o3 <= 255 && o4 <= 255)) || kd_usage_error "--$1" "each address octet must be 0-255"
  ((p >= KD_RULE_SUBNET_PREFIX_MIN && p <= KD_RULE_SUBNET_PREFIX_MAX)) || kd_usage_error "--$1" "prefix length must be $KD_RULE_SUBNET_PREFIX_MIN-$KD_RULE_SUBNET_PREFIX_MAX"
  local base=$(((o1 << 24) | (o2 << 16) | (o3 << 8) | o4))
  local mask=$(((0xffffffff << (32 - p)) & 0xffffffff))
  (((base & mask) == base)) || kd_usage_error "--$1" "address must be the network address of the prefix"
  # Two networks overlap when they agree on the shorter of the two prefixes.
  local i q sm
  for i in "${!KD_RULE_SPECIAL_BASE[@]}"; do
    q=$p
    if ((KD_RULE_SPECIAL_PREFIX[i] < q)); then
      q=${KD_RULE_SPECIAL_PREFIX[i]}
    fi
    sm=$(((0xffffffff << (32 - q)) & 0xffffffff))
    if (((base & sm) == (KD_RULE_SPECIAL_BASE[i] & sm))); then
      kd_usage_error "--$1" "must not overlap a special-purpose range (${KD_RULE_SPECIAL_CIDR[i]} is ${KD_RULE_SPECIAL_WHAT[i]})"
    fi
  done
}

kd_check_api_address() { # FLAG VALUE: an IPv4 address this host can publish the API on
  local a
  [[ $2 =~ $KD_RULE_IPV4_PATTERN ]] || kd_usage_error "--$1" "$KD_RULE_API_ADDRESS_RULE"
  for a in "${KD_RULE_API_ADDRESS_REFUSED[@]}"; do
    if [[ $2 == "$a" ]]; then
      kd_usage_error "--$1" "$KD_RULE_API_ADDRESS_RULE"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# Setup, traps, cleanup hook

# kd_init: temp dir, stderr fifo, KUBECONFIG guard, traps. Call after flag parsing.
kd_init() {
  local dir
  if dir=$(mktemp -d "${TMPDIR:-/tmp}/kindler-${KD_SCRIPT%.sh}.XXXXXX"); then
    KD_TMP=$dir
  else
    kd_die "cannot create a temporary directory under ${TMPDIR:-/tmp}"
  fi
  trap 'kd_on_exit' EXIT
  trap 'kd_on_err' ERR
  trap 'kd_on_signal TERM 143' TERM
  trap 'kd_on_signal INT 130' INT
  trap 'kd_on_signal HUP 129' HUP
  KD_FIFO="$KD_TMP/stderr.fifo"
  mkfifo -m 600 "$KD_FIFO" || kd_die "cannot create a fifo in $KD_TMP"
  # Any tool that would write "the default kubeconfig" (k3d cluster delete does) writes this
  # throwaway file instead of the user's ~/.kube/config. kubectl always gets --kubeconfig.
  : >"$KD_TMP/kubeconfig.guard" || kd_die "cannot write $KD_TMP/kubeconfig.guard"
  export KUBECONFIG="$KD_TMP/kubeconfig.guard"
}

kd_on_err() {
  local rc=$?
  [[ $BASHPID == "$KD_MAIN_PID" ]] || return 0
  if ((KD_ERR_PRINTED == 0)); then
    kd_error "internal error in $KD_SCRIPT line ${BASH_LINENO[0]}: '$BASH_COMMAND' failed (exit $rc)"
  fi
}

kd_on_signal() {
  trap '' TERM INT HUP # the cleanup that follows must not be cut short by a second signal
  local code=$2
  if [[ -n $KD_CHILD ]]; then
    # The daemon signals the whole process group, so the tool usually got the signal too; this
    # covers a signal sent to bash alone. A tool that is already gone makes kill fail: expected.
    if kill -TERM "$KD_CHILD" 2>/dev/null; then :; fi
    if wait "$KD_CHILD"; then :; fi
    KD_CHILD=""
  fi
  if [[ -n $KD_TEE ]]; then
    # The tee ends at EOF once the tool is gone (or was signalled with the group). Reap it, so
    # that no process of ours outlives the script.
    if wait "$KD_TEE"; then :; fi
    KD_TEE=""
  fi
  if ((KD_ERR_PRINTED == 0)); then
    if [[ -n $KD_STEP_DESC ]]; then
      kd_error "interrupted by SIG$1 during $KD_STEP_DESC"
    else
      kd_error "interrupted by SIG$1"
    fi
  fi
  exit "$code"
}

kd_on_exit() {
  local rc=$?
  set +e
  trap '' TERM INT HUP
  trap - ERR
  if ((rc != 0 && KD_ERR_PRINTED == 0)); then
    kd_error "$KD_SCRIPT failed (exit $rc)${KD_STEP_DESC:+ during $KD_STEP_DESC}"
  fi
  if declare -F kd_cleanup_hook >/dev/null; then
    kd_cleanup_hook "$rc"
  fi
  if [[ -n $KD_TMP ]]; then
    rm -rf -- "$KD_TMP"
  fi
  exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Running tools

# kd_run [-o FILE] [--] CMD ARGS...
# Runs CMD in the background and waits for it, so a signal is handled at once. stdout goes through
# (or into FILE with -o); stderr goes through live and is also kept, to pick the error line.
# Sets KD_RC and KD_LAST_ERROR; returns CMD's exit status. Always call it as `if kd_run ...`.
kd_run() {
  local out=""
  while (($#)); do
    case $1 in
      -o) out=$2; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  local errlog="$KD_TMP/stderr.log"
  KD_LAST_ERROR=""
  KD_RC=0
  if : >"$errlog"; then :; else
    KD_RC=1
    KD_LAST_ERROR="cannot write $errlog"
    return 1
  fi
  tee -a "$errlog" <"$KD_FIFO" >&2 &
  KD_TEE=$!
  if [[ -n $out ]]; then
    "$@" >"$out" 2>"$KD_FIFO" &
  else
    "$@" 2>"$KD_FIFO" &
  fi
  KD_CHILD=$!
  local rc=0
  if wait "$KD_CHILD"; then rc=0; else rc=$?; fi
  KD_CHILD=""
  # tee only copies diagnostics; its status (e.g. our stderr went away) does not change CMD's.
  if wait "$KD_TEE"; then :; fi
  KD_TEE=""
  KD_RC=$rc
  if ((rc != 0)); then
    kd_pick_error_line "$errlog"
    KD_LAST_ERROR=${REPLY:-"(no error output)"}
    # 128+N: the tool was killed by signal N (a crash, the OOM killer); say so, it is the reason.
    local sig=""
    if ((rc > 128)) && sig=$(kill -l "$((rc - 128))" 2>/dev/null); then
      KD_LAST_ERROR="killed by SIG$sig${REPLY:+ (its last error output: $REPLY)}"
    fi
  fi
  return "$rc"
}

# kd_pick_error_line FILE: sets REPLY to the line of a tool's stderr that says what failed: the last
# error line in a tool's own format (kind `ERROR: …`, k3d `FATA[…]`/`ERRO[…]` or `level=fatal|error`,
# kubectl/docker `error: …`/`Error: …`/`Error response from daemon: …`/`Error from server …`), with
# its prefix removed. Hints and summaries that only follow from the real error are skipped (k3d's
# roll-back lines, "Run '… --help'", kubeadm's "To see the stack trace of this error execute with
# --v=5 or higher", docker's "Error: failed to start containers: X"). When kind's ERROR line is
# followed by the `Command Output:` of the command it ran, the telling line of that output is added
# in parentheses. A stderr with no error line gives its last meaningful line.
kd_pick_error_line() {
  local -a lines=()
  REPLY=""
  if mapfile -t lines <"$1"; then :; else return 0; fi
  # What a tool prints while rolling back ("failed to get cluster: No nodes found …") only follows
  # from the real error: look before the roll-back first, then at everything.
  local end=${#lines[@]} i
  for ((i = end - 1; i >= 0; i--)); do
    if [[ ${lines[i]} == *'>>> Rolling Back'* ]]; then
      kd_pick_error_from "$i"
      if [[ -n $REPLY ]]; then
        return 0
      fi
      break
    fi
  done
  kd_pick_error_from "$end"
}

# kd_error_noise LINE: 0 for a line that never says what failed (hints, roll-back and summary lines).
kd_error_noise() {
  case $1 in
    *'>>> Rolling Back'* | *'Cluster creation FAILED'* | *'At least one error occured'* | *'At least one error occurred'*) return 0 ;;
    "Run '"*"--help' for more information"* | "See '"*"--help' for usage"* | "Run '"*"--help' for usage"*) return 0 ;;
    'To see the stack trace of this error execute with --v='*) return 0 ;;
    'Error: failed to start containers: '*) return 0 ;;
    'Command Output:' | 'Stack Trace:'*) return 0 ;;
  esac
  return 1
}

# kd_error_kind LINE: 0 when LINE is an error line in a tool's own format.
kd_error_kind() {
  case $1 in
    'ERROR: '* | 'FATA['* | 'ERRO['* | 'FATA '* | 'ERRO '* | 'error: '* | 'Error: '* | 'Error response from daemon: '* | 'Error from server'* | 'Error in configuration'* | 'The connection to the server '*) return 0 ;;
  esac
  if [[ $1 =~ ^time=.*\ level=(fatal|error)\  ]]; then
    return 0
  fi
  return 1
}

# kd_error_strip LINE: sets REPLY to LINE without its tool prefix, and a long quoted command shortened.
kd_error_strip() {
  local line=$1
  if [[ $line =~ ^(FATA|ERRO|WARN|INFO)(\[[0-9]+\])?\ +(.*)$ ]]; then
    line=${BASH_REMATCH[3]}
  elif [[ $line =~ ^time=.*\ level=[a-z]+\ msg=\"(.*)\"$ ]]; then
    line=${BASH_REMATCH[1]}
  fi
  line=${line#ERROR: }
  line=${line#error: }
  line=${line#Error: }
  line=${line#Command Output: }
  # kind quotes the whole docker command it ran; its first words are enough to say which one.
  if [[ $line =~ ^(.*command \")([^\"]{60,})(\".*)$ ]]; then
    line="${BASH_REMATCH[1]}${BASH_REMATCH[2]:0:40}...${BASH_REMATCH[3]}"
  fi
  REPLY=$line
}

# kd_pick_error_from END: kd_pick_error_line's search over lines[0..END-1] (the caller's array).
kd_pick_error_from() {
  local i line found=-1 fallback="" detail="" out=-1
  REPLY=""
  for ((i = $1 - 1; i >= 0; i--)); do
    kd_oneline "${lines[i]}"
    line=$REPLY
    [[ -n $line ]] || continue
    if kd_error_noise "$line"; then
      continue
    fi
    if [[ -z $fallback ]]; then
      fallback=$line
    fi
    if kd_error_kind "$line"; then
      found=$i
      break
    fi
  done
  if ((found < 0)); then
    kd_error_strip "$fallback"
    line=$REPLY
  else
    kd_oneline "${lines[found]}"
    kd_error_strip "$REPLY"
    line=$REPLY
    # kind: `ERROR: … command "…" failed with error: exit status N`, then `Command Output: …` lines.
    if [[ ${lines[found]} == 'ERROR: '* ]]; then
      for ((i = found + 1; i < $1; i++)); do
        if [[ ${lines[i]} == 'Command Output:'* ]]; then
          out=$i
          break
        fi
      done
    fi
    if ((out >= 0)); then
      for ((i = $1 - 1; i >= out; i--)); do
        kd_oneline "${lines[i]}"
        [[ -n $REPLY ]] || continue
        if kd_error_noise "$REPLY"; then
          continue
        fi
        kd_error_strip "$REPLY"
        [[ -n $REPLY ]] || continue
        if [[ -z $detail ]]; then
          detail=$REPLY
        fi
        if [[ $REPLY =~ [Ee]rror|ERROR|[Ff]ail|FATAL|[Ff]atal|[Cc]annot|refused|denied|allocated|in\ use|not\ found|No\ such|[Ii]nvalid|timed\ out ]]; then
          detail=$REPLY
          break
        fi
      done
      detail=${detail#docker: }
    fi
  fi
  # Room for the message around it ("<tool> failed (exit N): LINE") within a marker's 600 characters.
  if [[ -n $detail ]]; then
    if ((${#detail} > 220)); then
      detail="...${detail: -217}"
    fi
    local room=$((420 - ${#detail} - 20))
    if ((${#line} > room)); then
      line="${line:0:room-3}..."
    fi
    line="$line (command output: $detail)"
  elif ((${#line} > 300)); then
    line="...${line: -297}"
  fi
  REPLY=$line
}

# kd_need_tool NAME: the tool must be on PATH.
kd_need_tool() {
  if type -P "$1" >/dev/null; then :; else
    kd_die "$1 is not installed (not found on PATH)" 127
  fi
}

# kd_docker_reachable: docker info must answer (its stdout is not needed).
kd_docker_reachable() {
  kd_need_tool docker
  if kd_run -o /dev/null -- docker info; then :; else
    kd_die "docker is not reachable (docker info exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
}

# kd_port_listening PORT: 0 when something accepts connections on 127.0.0.1:PORT, 1 when the
# connection is refused (free), 2 when the probe could not decide.
kd_port_listening() {
  local rc=0
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash
  if timeout --foreground 3 "$BASH" -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' kindler-port-probe "$1" 2>/dev/null; then
    return 0
  else
    rc=$?
  fi
  if ((rc == 1)); then
    return 1
  fi
  return 2
}

# kd_check_ports_free FLAG=PORT...: fail when one of them is being listened on.
kd_check_ports_free() {
  local spec flag port rc
  for spec in "$@"; do
    flag=${spec%%=*}
    port=${spec#*=}
    if kd_port_listening "$port"; then
      kd_die "host port $port (--$flag) is already in use: something accepts connections on 127.0.0.1:$port"
    else
      rc=$?
    fi
    if ((rc != 1)); then
      kd_die "could not check host port $port (--$flag): the connection probe to 127.0.0.1:$port neither connected nor was refused"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# The provider's view of clusters: docker containers and their labels. This is the only place
# that decides whether a cluster exists and what state it is in.

kd_cluster_label() { # PROVIDER -> REPLY
  case $1 in
    k3d) REPLY=k3d.cluster ;;
    kind) REPLY=io.x-k8s.kind.cluster ;;
    *) kd_internal "unknown provider $1" ;;
  esac
}

kd_role_label() { # PROVIDER -> REPLY
  case $1 in
    k3d) REPLY=k3d.role ;;
    kind) REPLY=io.x-k8s.kind.role ;;
    *) kd_internal "unknown provider $1" ;;
  esac
}

kd_context_for() { # PROVIDER NAME -> REPLY
  case $1 in
    k3d) REPLY="k3d-$2" ;;
    kind) REPLY="kind-$2" ;;
    *) kd_internal "unknown provider $1" ;;
  esac
}

kd_first_node_for() { # PROVIDER NAME -> REPLY: the container that carries the node address
  case $1 in
    k3d) REPLY="k3d-$2-server-0" ;;
    kind) REPLY="$2-control-plane" ;;
    *) kd_internal "unknown provider $1" ;;
  esac
}

# kd_docker_ps PROVIDER FILE [NAME]: writes "cluster<TAB>container<TAB>state<TAB>role" lines for
# every container of cluster NAME (or of every cluster of PROVIDER) into FILE. Returns docker's
# status (KD_LAST_ERROR explains a failure).
kd_docker_ps() {
  local provider=$1 file=$2 name=${3:-} clabel rlabel filter
  kd_cluster_label "$provider"
  clabel=$REPLY
  kd_role_label "$provider"
  rlabel=$REPLY
  if [[ -n $name ]]; then
    filter="label=$clabel=$name"
  else
    filter="label=$clabel"
  fi
  kd_run -o "$file" -- docker ps -a --filter "$filter" \
    --format "{{.Label \"$clabel\"}}\t{{.Names}}\t{{.State}}\t{{.Label \"$rlabel\"}}"
}

# kd_tally PROVIDER FILE NAME: reads kd_docker_ps output and sets, for cluster NAME:
#   KD_STATE     absent | running | stopped | degraded
#   KD_NODES     Kubernetes nodes (k3d server+agent, kind control-plane+worker containers)
#   KD_RUNNING   of those, how many are running
#   KD_CONTAINERS  every container of the cluster (array), for start/stop
#   KD_CONTAINER_ROWS  "NAME<TAB>ROLE<TAB>STATE" for each of them, as docker reports them
# running  = at least one node, and every node and load balancer container is running;
# stopped  = none of those is running;  degraded = anything in between, or containers without
# nodes (leftovers);  absent = no container carries the cluster label.
kd_tally() {
  local provider=$1 file=$2 name=$3
  local -a lines=()
  KD_STATE=absent KD_NODES=0 KD_RUNNING=0
  KD_CONTAINERS=()
  KD_CONTAINER_ROWS=()
  mapfile -t lines <"$file" || kd_internal "cannot read $file"
  local line cl cname cstate crole core=0 core_running=0 all=0
  for line in "${lines[@]}"; do
    [[ -n $line ]] || continue
    IFS=$'\t' read -r cl cname cstate crole <<<"$line"
    [[ $cl == "$name" ]] || continue
    all=$((all + 1))
    KD_CONTAINERS+=("$cname")
    KD_CONTAINER_ROWS+=("$cname"$'\t'"$crole"$'\t'"$cstate")
    case "$provider:$crole" in
      k3d:server | k3d:agent | kind:control-plane | kind:worker)
        KD_NODES=$((KD_NODES + 1))
        core=$((core + 1))
        if [[ $cstate == running ]]; then
          KD_RUNNING=$((KD_RUNNING + 1))
          core_running=$((core_running + 1))
        fi
        ;;
      k3d:loadbalancer | kind:external-load-balancer)
        core=$((core + 1))
        if [[ $cstate == running ]]; then
          core_running=$((core_running + 1))
        fi
        ;;
      *) ;; # helpers (k3d tools node, registries): not part of the state
    esac
  done
  if ((all == 0)); then
    KD_STATE=absent
  elif ((KD_NODES == 0)); then
    KD_STATE=degraded
  elif ((core_running == core)); then
    KD_STATE=running
  elif ((core_running == 0)); then
    KD_STATE=stopped
  else
    KD_STATE=degraded
  fi
}

# kd_cluster_state PROVIDER NAME: probe docker and tally; dies with an error marker when docker
# cannot be asked (never "absent" for an unreachable docker).
kd_cluster_state() {
  local file="$KD_TMP/ps.out"
  if kd_docker_ps "$1" "$file" "$2"; then :; else
    kd_die "cannot list the containers of $1 cluster $2 (docker ps exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
  kd_tally "$1" "$file" "$2"
}

# kd_node_address PROVIDER NAME: sets KD_NODE_ADDRESS to the IPv4 address of the first server /
# control-plane container on the cluster's own docker network (k3d: the network in its
# k3d.cluster.network label, else k3d-NAME; kind: $KIND_EXPERIMENTAL_DOCKER_NETWORK, else kind), or dies.
# This is the address the API server (port 6443) and the ingress have for other containers on that
# network (Argo CD, Portainer). A node that was also connected to another network keeps this one; a node
# on a single network of another name (a kind network override the script does not see) uses that one.
kd_node_address() {
  local file="$KD_TMP/inspect.out" node line want entry k v addr="" count=0 only=""
  local -a lines=() entries=()
  kd_first_node_for "$1" "$2"
  node=$REPLY
  if kd_run -o "$file" -- docker inspect -f '{{index .Config.Labels "k3d.cluster.network"}}|{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}' "$node"; then :; else
    kd_die "docker inspect $node failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
  mapfile -t lines <"$file" || kd_internal "cannot read $file"
  line=${lines[0]:-}
  want=${line%%|*}
  if [[ $1 == kind ]]; then
    want=${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}
  elif [[ -z $want ]]; then
    want="k3d-$2"
  fi
  read -r -a entries <<<"${line#*|}"
  for entry in "${entries[@]}"; do
    k=${entry%%=*}
    v=${entry#*=}
    count=$((count + 1))
    only=$v
    if [[ $k == "$want" ]]; then
      addr=$v
    fi
  done
  if [[ -z $addr && $count -eq 1 ]]; then
    addr=$only
  fi
  if ((count == 0)) || [[ -z $addr ]]; then
    if ((count > 1)); then
      kd_die "container $node is on ${count} docker networks and none is the cluster's network $want (docker reported '${line#*|}')"
    fi
    kd_die "container $node has no IP address (is it running?)"
  fi
  if [[ ! $addr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    kd_die "container $node has no single IPv4 address on network $want (docker reported '$addr')"
  fi
  KD_NODE_ADDRESS=$addr
}

# kd_kubeconfig_has_context FILE CONTEXT: 0 when FILE defines CONTEXT; dies when kubectl fails.
kd_kubeconfig_has_context() {
  local out="$KD_TMP/contexts.out" c
  local -a names=()
  if kd_run -o "$out" -- kubectl --kubeconfig "$1" config get-contexts -o name; then :; else
    kd_die "cannot read kubeconfig $1 (kubectl config get-contexts exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
  mapfile -t names <"$out" || kd_internal "cannot read $out"
  for c in "${names[@]}"; do
    if [[ $c == "$2" ]]; then
      return 0
    fi
  done
  return 1
}

# kd_wait_ready KUBECONFIG CONTEXT SECONDS: every node Ready, or die with kubectl's reason.
kd_wait_ready() {
  if kd_run -- kubectl --kubeconfig "$1" --context "$2" wait --for=condition=Ready nodes --all "--timeout=${3}s"; then :; else
    kd_die "nodes did not become Ready within ${3}s (kubectl wait exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
}
