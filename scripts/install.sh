#!/usr/bin/env bash
# scripts/install.sh - install or remove kindler as a systemd service.
#
#   install.sh install   [--prefix /opt/kindler] [--root DIR] [--dry-run] [--enable] [--node PATH]
#   install.sh uninstall [--prefix DIR] [--purge] [--root DIR] [--dry-run]
#
# Installs the *built* checkout this script lives in (dist/, scripts/, config/, systemd/,
# package.json, package-lock.json, README.md and node_modules/ as they are: nothing is fetched or
# compiled here), the unit, /etc/kindler and /var/lib/kindler. Idempotent: a second run changes
# nothing. See systemd/README.md for the layout and the reasons behind it.
set -Eeuo pipefail
shopt -s inherit_errexit
umask 022
export LC_ALL=C

readonly PROG=install.sh
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly SRC
readonly SVC_USER=kindler
readonly SVC_GROUP=kindler
readonly DOCKER_GROUP=docker
readonly UNIT_NAME=kindler.service
readonly UNIT_DIR=/etc/systemd/system
readonly STATE_DIR=/var/lib/kindler
readonly CONF_DIR=/etc/kindler
readonly DEFAULT_PREFIX=/opt/kindler
# What is copied from the checkout; the optional ones are copied when present.
readonly REQUIRED_PARTS=(dist scripts config package.json node_modules)
readonly OPTIONAL_PARTS=(systemd package-lock.json README.md)
readonly MARKER=.kindler-install

usage() {
  cat <<EOF
usage: $PROG install   [--prefix DIR] [--root DIR] [--dry-run] [--enable] [--node PATH]
       $PROG uninstall [--prefix DIR] [--purge] [--root DIR] [--dry-run]

install     copy the built app to --prefix (default $DEFAULT_PREFIX), create the user $SVC_USER,
            $STATE_DIR, $CONF_DIR (kindler.json only if missing) and the unit
            $UNIT_DIR/$UNIT_NAME; --enable also enables and starts the service
uninstall   stop, disable and remove the unit and the prefix; --purge also removes
            $STATE_DIR and $CONF_DIR (the user $SVC_USER is kept)

--root DIR  operate on DIR as if it were / (staged install, tests): every path is prefixed with
            DIR, and user/group changes, chown and systemctl are printed, not run
--dry-run   print every action as "would: ..." and change nothing
--node PATH the node binary the service runs (default: node on PATH)
--prefix    for uninstall, default: the WorkingDirectory= of the installed unit
EOF
}

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n' "$PROG" "$*" >&2; printf 'run "%s help" for usage\n' "$PROG" >&2; exit 2; }
say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

STAGE=""
DRY=0
on_err() {
  local rc=$1 line=$2 cmd=$3 where="" f
  shift 3
  for f in "$@"; do
    [[ $f == main ]] || where+="${where:+ < }$f"
  done
  printf '%s: line %s (%s): "%s" failed (exit %s); stopped, nothing after it was done\n' "$PROG" "$line" "$where" "$cmd" "$rc" >&2
  exit "$rc"
}
on_exit() {
  # A half-built staging copy from a failed run is removed; the live prefix is never left half-built.
  if ((!DRY)) && [[ -n $STAGE && -e $STAGE ]]; then rm -rf -- "$STAGE"; fi
}
# The trap names the failed command as written and the function stack it ran in (innermost first).
trap 'on_err $? $LINENO "$BASH_COMMAND" "${FUNCNAME[@]}"' ERR
trap on_exit EXIT

# ---- options ---------------------------------------------------------------------------------

CMD=${1:-}
[[ -n $CMD ]] || { usage >&2; exit 2; }
shift
case $CMD in
  install | uninstall) ;;
  help | -h | --help) usage; exit 0 ;;
  *) usage_error "unknown command \"$CMD\" (install, uninstall or help)" ;;
esac

PREFIX="" ROOT="" DRY=0 ENABLE=0 PURGE=0 NODE=""
need_value() { [[ $# -ge 2 && -n $2 ]] || usage_error "$1: needs a value"; }
while (($#)); do
  case $1 in
    --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --root) need_value "$@"; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#*=}; shift ;;
    --node) [[ $CMD == install ]] || usage_error "--node: only for install"; need_value "$@"; NODE=$2; shift 2 ;;
    --node=*) [[ $CMD == install ]] || usage_error "--node: only for install"; NODE=${1#*=}; shift ;;
    --dry-run) DRY=1; shift ;;
    --enable) [[ $CMD == install ]] || usage_error "--enable: only for install"; ENABLE=1; shift ;;
    --purge) [[ $CMD == uninstall ]] || usage_error "--purge: only for uninstall"; PURGE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument \"$1\"" ;;
  esac
done

# --root: an existing directory; "/" means the running system.
if [[ -n $ROOT ]]; then
  [[ -d $ROOT ]] || usage_error "--root: $ROOT is not a directory"
  ROOT=$(cd "$ROOT" && pwd -P)
  [[ $ROOT != / ]] || ROOT=""
fi
readonly ROOT DRY ENABLE PURGE
# REAL: this run acts on the running system (users, ownership, systemctl).
REAL=1
[[ -z $ROOT ]] || REAL=0
readonly REAL

if ((REAL && !DRY && EUID != 0)); then
  die "must run as root to change the system (or use --dry-run, or --root DIR for a staged install)"
fi

# A path as this run sees it.
r() { printf '%s%s' "$ROOT" "$1"; }

# Paths the unit can see: ProtectHome=yes hides /home, /root and /run/user; PrivateTmp=yes hides
# /tmp and /var/tmp. The prefix and node must live elsewhere.
hidden_from_unit() {
  case $1/ in
    /home/* | /root/* | /run/user/* | /tmp/* | /var/tmp/*) return 0 ;;
  esac
  return 1
}

check_prefix() {
  local p=$1
  [[ $p =~ ^(/[A-Za-z0-9._+-]+){2,}$ ]] ||
    usage_error "--prefix: \"$p\" must be an absolute path of at least two parts made of letters, digits and ._+- (e.g. $DEFAULT_PREFIX)"
  [[ ! $p =~ /\.\.?(/|$) ]] || usage_error "--prefix: \"$p\" must not contain . or .. parts"
  if hidden_from_unit "$p"; then usage_error "--prefix: $p is hidden from the service (ProtectHome=yes, PrivateTmp=yes); use e.g. $DEFAULT_PREFIX"; fi
  case $p/ in
    "$STATE_DIR"/* | "$CONF_DIR"/* | /etc/systemd/* | /usr/bin/* | /usr/sbin/* | /usr/lib/* | /bin/* | /sbin/* | /lib/* | /proc/* | /sys/* | /dev/* | /run/*)
      usage_error "--prefix: $p is a system or kindler data location; use e.g. $DEFAULT_PREFIX" ;;
  esac
}

# ---- actions -----------------------------------------------------------------------------------

CHANGES=0
# act DESC CMD...: one change. Runs CMD (its status checked by errexit) and prints "done: DESC",
# or with --dry-run prints "would: DESC" and runs nothing.
act() {
  local desc=$1
  shift
  CHANGES=$((CHANGES + 1))
  if ((DRY)); then
    say "would: $desc"
    return 0
  fi
  "$@"
  say "done: $desc"
}
systemd_running() { [[ -d /run/systemd/system ]]; }

owner_of() { stat -c '%U:%G' -- "$1"; }
mode_of() { stat -c '%a' -- "$1"; }

# ensure_owner PATH OWNER:GROUP
ensure_owner() {
  local path=$1 want=$2 have
  if ((!REAL)); then
    say "skip: chown $want $path (--root: not the running system)"
    return 0
  fi
  if [[ ! -e $path ]]; then
    # Only reachable with --dry-run, where the path would have been created just before.
    act "chown $want $path" chown -- "$want" "$path"
    return 0
  fi
  have=$(owner_of "$path")
  [[ $have == "$want" ]] || act "chown $want $path (was $have)" chown -- "$want" "$path"
}

# ensure_dir PATH MODE [OWNER:GROUP]: PATH as this run sees it.
ensure_dir() {
  local path=$1 mode=$2 owner=${3:-} have
  if [[ -L $path || (-e $path && ! -d $path) ]]; then die "$path exists and is not a directory"; fi
  if [[ -n ${PLANNED_DIRS[$path]:-} ]]; then
    :
  elif [[ ! -d $path ]]; then
    act "create directory $path (mode $mode)" make_dir "$path" "$mode"
    plan_dir "$path"
  else
    have=$(mode_of "$path")
    [[ $have == "${mode#0}" ]] || act "chmod $mode $path (was $have)" chmod -- "$mode" "$path"
  fi
  [[ -z $owner ]] || ensure_owner "$path" "$owner"
}
make_dir() { mkdir -p -- "$1"; chmod -- "$2" "$1"; }
# Directories a --dry-run would have created, so that nothing is planned twice.
declare -A PLANNED_DIRS=()
plan_dir() { if ((DRY)); then PLANNED_DIRS[$1]=1; fi; }

# same_content FILE TEXT: 0 when FILE holds exactly TEXT, 1 when not; dies when cmp cannot tell.
same_content() {
  local rc=0
  cmp -s -- "$1" <(printf '%s' "$2") || rc=$?
  case $rc in
    0) return 0 ;;
    1) return 1 ;;
    *) die "cannot compare $1 (cmp exit $rc)" ;;
  esac
}

# ensure_parent PATH: creates a missing parent directory (0755); never changes an existing one.
ensure_parent() {
  local dir
  dir=$(dirname -- "$1")
  if [[ ! -d $dir && -z ${PLANNED_DIRS[$dir]:-} ]]; then
    act "create directory $dir (mode 0755)" make_dir "$dir" 0755
    plan_dir "$dir"
  fi
}

# write_file PATH MODE CONTENT: writes PATH atomically when its content differs; WROTE=1 then.
WROTE=0
write_file() {
  local path=$1 mode=$2 content=$3 have
  WROTE=0
  if [[ -L $path || (-e $path && ! -f $path) ]]; then die "$path exists and is not a regular file"; fi
  if [[ -f $path ]] && same_content "$path" "$content"; then
    have=$(mode_of "$path")
    if [[ $have != "${mode#0}" ]]; then act "chmod $mode $path (was $have)" chmod -- "$mode" "$path"; fi
    return 0
  fi
  WROTE=1
  ensure_parent "$path"
  if [[ -f $path ]]; then
    act "update $path (mode $mode)" put_file "$path" "$mode" "$content"
  else
    act "write $path (mode $mode)" put_file "$path" "$mode" "$content"
  fi
}
put_file() {
  local path=$1 mode=$2 content=$3 tmp
  tmp="$(dirname -- "$path")/.$(basename -- "$path").install-$$"
  printf '%s' "$content" >"$tmp"
  chmod -- "$mode" "$tmp"
  mv -f -- "$tmp" "$path"
}

remove_path() {
  local path=$1 what=$2
  if [[ -e $path || -L $path ]]; then
    act "remove $what $path" rm -rf -- "$path"
  fi
}

# ---- the app tree ------------------------------------------------------------------------------

PARTS=()
collect_parts() {
  local p
  for p in "${REQUIRED_PARTS[@]}"; do
    [[ -e $SRC/$p ]] || die "$SRC/$p is missing: build the checkout first (npm ci && npm run build; npm prune --omit=dev for a lean install)"
    PARTS+=("$p")
  done
  [[ -f $SRC/dist/cli.js ]] || die "$SRC/dist/cli.js is missing: run npm run build first"
  for p in "${OPTIONAL_PARTS[@]}"; do
    [[ ! -e $SRC/$p ]] || PARTS+=("$p")
  done
}

# What the installed tree must contain, one line per entry: path, type, mode as installed
# (u=rwX,go=rX), and for files size and modification time (cp keeps them): rsync's quick check.
# config/users.conf (a developer's users) and node_modules/.cache are never copied.
expected_manifest() {
  (
    cd -- "$SRC"
    find "${PARTS[@]}" \( -path config/users.conf -o -path node_modules/.cache \) -prune -o \
      \( -type d -printf '%p d 755\n' \) -o \
      \( -type f -perm /111 -printf '%p f 755 %s %T@\n' \) -o \
      \( -type f -printf '%p f 644 %s %T@\n' \) -o \
      \( -type l -printf '%p l %l\n' \) -o -printf '%p other\n'
  ) | sort
}
installed_manifest() {
  (
    cd -- "$1"
    find "${PARTS[@]}" \
      \( -type d -printf '%p d %m\n' \) -o \
      \( -type f -printf '%p f %m %s %T@\n' \) -o \
      \( -type l -printf '%p l %l\n' \) -o -printf '%p other\n'
  ) | sort
}

render_wrapper() {
  cat <<EOF
#!/bin/sh
# kindler CLI and daemon, written by scripts/install.sh (re-run it instead of editing this file).
: "\${KINDLER_CONFIG:=$CONF_DIR/kindler.json}"
export KINDLER_CONFIG
exec '$NODE' '$PREFIX/dist/cli.js' "\$@"
EOF
}

# app_state DIR: APP_DIFF="" when DIR holds exactly what would be installed, else why not.
APP_DIFF=""
app_state() {
  local dir=$1 p want have
  APP_DIFF=""
  if [[ ! -e $dir && ! -L $dir ]]; then APP_DIFF="not installed"; return 0; fi
  if [[ ! -d $dir || -L $dir ]]; then APP_DIFF="not a directory"; return 0; fi
  for p in "${PARTS[@]}"; do
    if [[ ! -e $dir/$p && ! -L $dir/$p ]]; then APP_DIFF="$p is missing"; return 0; fi
  done
  want=$(printf '%s\n' "${PARTS[@]}" bin "$MARKER" | sort)
  have=$(cd -- "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort)
  if [[ $want != "$have" ]]; then APP_DIFF="other top-level entries"; return 0; fi
  have=$(mode_of "$dir")
  if [[ $have != 755 ]]; then APP_DIFF="mode $have"; return 0; fi
  if [[ ! -d $dir/bin || -L $dir/bin ]]; then APP_DIFF="bin is not a directory"; return 0; fi
  have=$(cd -- "$dir/bin" && find . -mindepth 1 -printf '%P %y %m\n')
  if [[ $have != "kindler f 755" || $(mode_of "$dir/bin") != 755 ]]; then APP_DIFF="bin/ differs"; return 0; fi
  if ! same_content "$dir/bin/kindler" "$WRAPPER_TEXT"; then APP_DIFF="bin/kindler differs"; return 0; fi
  if [[ ! -f $dir/$MARKER || -L $dir/$MARKER || $(mode_of "$dir/$MARKER") != 644 ]]; then APP_DIFF="$MARKER differs"; return 0; fi
  if ! same_content "$dir/$MARKER" "$MARKER_TEXT"; then APP_DIFF="another version"; return 0; fi
  want=$(expected_manifest)
  have=$(installed_manifest "$dir")
  if [[ $want != "$have" ]]; then APP_DIFF="files differ from the checkout"; return 0; fi
}

# build_app STAGE: a complete copy, owned by whoever runs this (root on a real install), not
# writable by the service.
build_app() {
  local stage=$1 p
  mkdir -- "$stage"
  for p in "${PARTS[@]}"; do
    cp -R -P --preserve=mode,timestamps -- "$SRC/$p" "$stage/$p"
  done
  rm -f -- "$stage/config/users.conf"
  rm -rf -- "$stage/node_modules/.cache"
  mkdir -- "$stage/bin"
  printf '%s' "$WRAPPER_TEXT" >"$stage/bin/kindler"
  printf '%s' "$MARKER_TEXT" >"$stage/$MARKER"
  chmod -R u=rwX,go=rX -- "$stage"
  chmod 755 -- "$stage/bin/kindler"
}

# install_app: replaces the prefix only when it differs; the old tree goes only once the new one
# is complete.
APP_CHANGED=0
install_app() {
  local dst old new
  dst=$(r "$PREFIX")
  old="$dst.kindler-old"
  new="$dst.kindler-new"
  remove_path "$new" "leftover staging copy"
  remove_path "$old" "leftover previous copy"
  app_state "$dst"
  if [[ -z $APP_DIFF ]]; then
    say "unchanged: $dst (the app matches $SRC)"
    return 0
  fi
  if [[ -e $dst || -L $dst ]]; then
    if [[ ! -d $dst || -L $dst || ! -f $dst/$MARKER ]]; then
      die "$dst exists but is not a kindler install (no $MARKER); remove it or choose another --prefix"
    fi
  fi
  APP_CHANGED=1
  ensure_parent "$dst"
  if ((!DRY)); then STAGE=$new; fi
  act "copy the app from $SRC to $new (${PARTS[*]}, bin/kindler; $dst: $APP_DIFF)" build_app "$new"
  if [[ -e $dst ]]; then
    act "move the previous $dst aside to $old" mv -- "$dst" "$old"
  fi
  act "move $new into place as $dst" mv -- "$new" "$dst"
  STAGE=""
  remove_path "$old" "previous copy"
}

# ---- config, unit ------------------------------------------------------------------------------

render_config() {
  cat <<EOF
{
  "\$comment": "kindler configuration, written once by scripts/install.sh and never overwritten. Relative paths are relative to this file. Every key: $PREFIX/README.md, Configuration.",
  "dataDir": "$STATE_DIR",
  "hooksDir": "$CONF_DIR/hooks.d",
  "ssh": {
    "enabled": true,
    "host": "127.0.0.1",
    "port": 2222,
    "hostKeyFile": "$STATE_DIR/keys/ssh_host_ed25519_key",
    "usersFile": "$CONF_DIR/users.conf"
  },
  "routes": {
    "enabled": false,
    "configFile": "/etc/haproxy/kindler/kindler.cfg"
  }
}
EOF
}

render_unit() {
  [[ -f $SRC/systemd/$UNIT_NAME ]] || die "$SRC/systemd/$UNIT_NAME is missing"
  # PREFIX is checked to hold only [A-Za-z0-9._+/-], so it is safe in the replacement.
  sed -e "s#$DEFAULT_PREFIX#$PREFIX#g" -- "$SRC/systemd/$UNIT_NAME"
}

# ---- install -----------------------------------------------------------------------------------

find_node() {
  local real
  if [[ -z $NODE ]]; then
    NODE=$(command -v node) || die "node not found on PATH; install Node >= 20.5 system-wide or pass --node PATH"
  fi
  [[ $NODE == /* ]] || die "--node: $NODE must be an absolute path"
  [[ $NODE =~ ^/[A-Za-z0-9._+/-]+$ ]] || die "--node: $NODE: only letters, digits and ._+-/ are supported in the path"
  [[ -f $NODE && -x $NODE ]] || die "--node: $NODE is not an executable file"
  real=$(readlink -f -- "$NODE")
  if hidden_from_unit "$NODE" || hidden_from_unit "$real"; then
    die "node at $NODE ($real) is hidden from the service (ProtectHome=yes, PrivateTmp=yes): install Node system-wide (e.g. /usr/bin/node) or pass --node PATH"
  fi
  if "$NODE" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 5) ? 0 : 1)'; then :; else
    die "node at $NODE is older than 20.5 ($("$NODE" --version))"
  fi
}

ensure_user() {
  local nologin=/usr/sbin/nologin home groups
  [[ -x $nologin ]] || nologin=/sbin/nologin
  [[ -x $nologin ]] || nologin=/bin/false
  if ((!REAL)); then
    say "skip: create system user $SVC_USER (home $STATE_DIR) and add it to group $DOCKER_GROUP (--root: not the running system)"
    return 0
  fi
  if getent passwd "$SVC_USER" >/dev/null; then
    home=$(getent passwd "$SVC_USER" | cut -d: -f6)
    [[ $home == "$STATE_DIR" ]] ||
      die "user $SVC_USER exists with home $home; the unit needs $STATE_DIR (ProtectHome=yes hides /home): usermod -d $STATE_DIR $SVC_USER"
    say "unchanged: user $SVC_USER"
  elif getent group "$SVC_GROUP" >/dev/null; then
    act "create system user $SVC_USER (existing group $SVC_GROUP, home $STATE_DIR)" \
      useradd --system --gid "$SVC_GROUP" --home-dir "$STATE_DIR" --no-create-home --shell "$nologin" --comment "kindler daemon" "$SVC_USER"
  else
    act "create system user $SVC_USER (group $SVC_GROUP, home $STATE_DIR)" \
      useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell "$nologin" --comment "kindler daemon" "$SVC_USER"
  fi
  if ! getent group "$DOCKER_GROUP" >/dev/null; then
    warn "group $DOCKER_GROUP does not exist (is docker installed?): the unit (SupplementaryGroups=$DOCKER_GROUP) will not start until it does; then re-run $PROG install"
    return 0
  fi
  groups=""
  if getent passwd "$SVC_USER" >/dev/null; then groups=$(id -nG "$SVC_USER"); fi
  if [[ " $groups " == *" $DOCKER_GROUP "* ]]; then
    say "unchanged: $SVC_USER is in group $DOCKER_GROUP"
  else
    act "add $SVC_USER to group $DOCKER_GROUP" usermod --append --groups "$DOCKER_GROUP" "$SVC_USER"
  fi
}

do_install() {
  local unit_changed=0 conf users owner need_reload unit_text conf_text
  [[ -n $PREFIX ]] || PREFIX=$DEFAULT_PREFIX
  check_prefix "$PREFIX"
  readonly PREFIX
  collect_parts
  find_node
  MARKER_TEXT="kindler $("$NODE" -p 'require(process.argv[1]).version' "$SRC/package.json")"$'\n'
  WRAPPER_TEXT=$(render_wrapper)$'\n'
  unit_text=$(render_unit)$'\n'
  conf_text=$(render_config)$'\n'
  readonly MARKER_TEXT WRAPPER_TEXT
  if ((REAL && ENABLE)) && ! getent group "$DOCKER_GROUP" >/dev/null; then
    die "--enable: group $DOCKER_GROUP does not exist (install docker first); the unit would not start"
  fi
  if ((DRY)); then say "dry run: nothing is changed"; fi

  ensure_user
  install_app

  ensure_dir "$(r "$STATE_DIR")" 0750 "$SVC_USER:$SVC_GROUP"

  # /etc/kindler: root:kindler 1770. The daemon rewrites users.conf (kindler users add ...) by
  # renaming a temp file over it, so it needs to write the directory; the sticky bit keeps it from
  # replacing or removing root's kindler.json and hooks.d.
  ensure_dir "$(r "$CONF_DIR")" 1770 "root:$SVC_GROUP"
  conf=$(r "$CONF_DIR/kindler.json")
  if [[ -e $conf || -L $conf ]]; then
    say "kept: $conf (exists; never overwritten)"
  else
    write_file "$conf" 0640 "$conf_text"
    ensure_owner "$conf" "root:$SVC_GROUP"
  fi
  ensure_dir "$(r "$CONF_DIR/hooks.d")" 0750 "root:$SVC_GROUP"
  ensure_dir "$(r "$CONF_DIR/hooks.d/post-create.d")" 0750 "root:$SVC_GROUP"
  ensure_dir "$(r "$CONF_DIR/hooks.d/post-delete.d")" 0750 "root:$SVC_GROUP"
  users=$(r "$CONF_DIR/users.conf")
  if [[ -e $users ]]; then
    say "kept: $users (never touched)"
    owner=$(owner_of "$users")
    if ((REAL)) && [[ $owner != "$SVC_USER:"* ]]; then
      warn "$users is owned by $owner: the daemon can read it but kindler users add/remove will fail until: chown $SVC_USER:$SVC_GROUP $users"
    fi
  else
    say "note: no $users yet: give the first admin with KINDLER_INITIAL_ADMIN_KEYS (systemctl edit kindler) or copy $PREFIX/config/users.conf.example"
  fi

  write_file "$(r "$UNIT_DIR/$UNIT_NAME")" 0644 "$unit_text"
  unit_changed=$WROTE

  if ((!REAL)); then
    say "skip: systemctl daemon-reload (--root: not the running system)"
    ((!ENABLE)) || say "skip: systemctl enable --now $UNIT_NAME (--root: not the running system)"
  elif ! systemd_running; then
    say "note: systemd is not running here: no daemon-reload, nothing started"
    if ((ENABLE)); then
      if systemctl is-enabled --quiet "$UNIT_NAME"; then
        say "unchanged: $UNIT_NAME is enabled"
      else
        act "systemctl enable $UNIT_NAME" systemctl enable --quiet "$UNIT_NAME"
      fi
    fi
  else
    need_reload=$(systemctl show --property=NeedDaemonReload --value "$UNIT_NAME")
    if ((unit_changed)); then need_reload=yes; fi
    if [[ $need_reload == yes ]]; then act "systemctl daemon-reload" systemctl daemon-reload; fi
    if ((ENABLE)); then
      if systemctl is-enabled --quiet "$UNIT_NAME"; then
        say "unchanged: $UNIT_NAME is enabled"
      else
        act "systemctl enable $UNIT_NAME" systemctl enable --quiet "$UNIT_NAME"
      fi
      if systemctl is-active --quiet "$UNIT_NAME"; then
        if ((APP_CHANGED || unit_changed)); then
          act "systemctl restart $UNIT_NAME (new app or unit; running tasks are recorded interrupted)" systemctl restart "$UNIT_NAME"
        else
          say "unchanged: $UNIT_NAME is running"
        fi
      else
        act "systemctl start $UNIT_NAME" systemctl start "$UNIT_NAME"
      fi
    elif systemctl is-active --quiet "$UNIT_NAME" && ((APP_CHANGED || unit_changed)); then
      say "note: $UNIT_NAME is running the previous version: systemctl restart $UNIT_NAME"
    fi
  fi

  if ((DRY)); then
    say "kindler: dry run: $CHANGES change(s) planned, nothing changed"
  elif ((CHANGES)); then
    say "kindler: installed in $(r "$PREFIX") ($CHANGES change(s))"
  else
    say "kindler: installed in $(r "$PREFIX") (no changes)"
  fi
}

# ---- uninstall ---------------------------------------------------------------------------------

do_uninstall() {
  local unit dst dropins wd
  unit=$(r "$UNIT_DIR/$UNIT_NAME")
  if [[ -z $PREFIX ]]; then
    PREFIX=$DEFAULT_PREFIX
    if [[ -f $unit ]]; then
      wd=$(sed -n 's/^WorkingDirectory=//p' -- "$unit")
      [[ -z $wd ]] || PREFIX=$wd
    fi
  fi
  check_prefix "$PREFIX"
  readonly PREFIX
  dst=$(r "$PREFIX")
  # Everything that could refuse is checked before anything is changed.
  if [[ -e $dst || -L $dst ]]; then
    [[ -d $dst && ! -L $dst && -f $dst/$MARKER ]] ||
      die "$dst is not a kindler install (no $MARKER); not removing it"
  fi
  if ((DRY)); then say "dry run: nothing is changed"; fi

  if [[ -f $unit ]]; then
    if ((!REAL)); then
      say "skip: systemctl disable --now $UNIT_NAME (--root: not the running system)"
    elif systemd_running; then
      act "systemctl disable --now $UNIT_NAME (running tasks are recorded interrupted)" systemctl disable --now --quiet "$UNIT_NAME"
    else
      act "systemctl disable $UNIT_NAME" systemctl disable --quiet "$UNIT_NAME"
    fi
  fi
  remove_path "$unit" "unit"
  dropins=$(r "$UNIT_DIR/$UNIT_NAME.d")
  if ((PURGE)); then
    remove_path "$dropins" "unit drop-ins"
  elif [[ -e $dropins ]]; then
    say "kept: $dropins (your drop-ins; --purge removes them)"
  fi
  if ((!REAL)); then
    say "skip: systemctl daemon-reload (--root: not the running system)"
  elif systemd_running && ((CHANGES)); then
    act "systemctl daemon-reload" systemctl daemon-reload
  fi

  remove_path "$dst.kindler-new" "leftover staging copy"
  remove_path "$dst.kindler-old" "leftover previous copy"
  remove_path "$dst" "app"

  if ((PURGE)); then
    remove_path "$(r "$STATE_DIR")" "state (clusters' records, kubeconfigs, logs, host key)"
    remove_path "$(r "$CONF_DIR")" "config"
  else
    [[ ! -e $(r "$STATE_DIR") ]] || say "kept: $(r "$STATE_DIR") (state; --purge removes it)"
    [[ ! -e $(r "$CONF_DIR") ]] || say "kept: $(r "$CONF_DIR") (config and users; --purge removes it)"
  fi
  say "note: the user $SVC_USER is kept (userdel $SVC_USER removes it); clusters kindler created keep running in docker (delete them first with kindler delete NAME)"
  if ((DRY)); then
    say "kindler: dry run: $CHANGES change(s) planned, nothing changed"
  elif ((CHANGES)); then
    say "kindler: uninstalled ($CHANGES change(s))"
  else
    say "kindler: nothing to uninstall"
  fi
}

case $CMD in
  install) do_install ;;
  uninstall) do_uninstall ;;
esac
