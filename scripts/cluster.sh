#!/usr/bin/env bash
# cluster.sh - operations on existing k3d/kind clusters:
#   start | stop | status | list | import-image | adopt   (the subcommand comes first, then flags)
# status/list are THE definition of the provider's view of a cluster (docker labels, see
# kd_tally in lib/common.sh). Prints ::kindler: markers (see scripts/README.md).
set -Eeuo pipefail
kd_here=${BASH_SOURCE[0]%/*}
if [[ $kd_here == "${BASH_SOURCE[0]}" ]]; then
  kd_here=.
fi
# shellcheck source=lib/common.sh
source "$kd_here/lib/common.sh"

kd_usage() {
  cat <<'EOF'
usage: cluster.sh start  --name NAME --provider k3d|kind [--kubeconfig FILE] [--wait-timeout SECONDS (180)]
       cluster.sh stop   --name NAME --provider k3d|kind
       cluster.sh status --name NAME --provider k3d|kind
       cluster.sh list   [--provider k3d|kind|all (all)]
       cluster.sh import-image --name NAME --provider k3d|kind --image IMAGE
       cluster.sh adopt  --name NAME --provider k3d|kind --kubeconfig FILE
See scripts/README.md.
EOF
}

SUB=${1-}
case $SUB in
  start | stop | status | list | import-image | adopt) shift ;;
  -h | --help)
    kd_usage
    exit 0
    ;;
  "") kd_usage_error subcommand "is required: start, stop, status, list, import-image or adopt" ;;
  *) kd_usage_error "$SUB" "unknown subcommand (start, stop, status, list, import-image or adopt)" ;;
esac

# Common flag handling for the subcommands that act on one cluster.
one_cluster_flags() {
  kd_require name provider
  kd_check_provider provider "${KD_FLAG[provider]}"
  PROVIDER=${KD_FLAG[provider]}
  kd_check_name "${KD_FLAG[name]}" "$PROVIDER"
  NAME=${KD_FLAG[name]}
}

case $SUB in
  start)
    kd_parse_flags name provider kubeconfig wait-timeout -- "$@"
    one_cluster_flags
    KUBECONFIG_FILE=""
    WAIT=180
    if kd_has kubeconfig; then
      kd_check_path kubeconfig "${KD_FLAG[kubeconfig]}"
      KUBECONFIG_FILE=${KD_FLAG[kubeconfig]}
    fi
    if kd_has wait-timeout; then
      kd_check_wait_timeout wait-timeout "${KD_FLAG[wait-timeout]}"
      WAIT=$((10#${KD_FLAG[wait-timeout]}))
    fi
    ;;
  stop | status)
    kd_parse_flags name provider -- "$@"
    one_cluster_flags
    ;;
  list)
    kd_parse_flags provider -- "$@"
    LIST_PROVIDER=${KD_FLAG[provider]:-all}
    kd_check_provider provider "$LIST_PROVIDER" all
    ;;
  adopt)
    kd_parse_flags name provider kubeconfig -- "$@"
    one_cluster_flags
    kd_require kubeconfig
    kd_check_path kubeconfig "${KD_FLAG[kubeconfig]}"
    KUBECONFIG_FILE=${KD_FLAG[kubeconfig]}
    ;;
  import-image)
    kd_parse_flags name provider image -- "$@"
    one_cluster_flags
    kd_require image
    kd_check_image image "${KD_FLAG[image]}"
    IMAGE=${KD_FLAG[image]}
    ;;
esac

kd_init

# preflight N TOTAL: docker reachable, tool present, cluster exists (sets KD_STATE & co).
preflight() {
  kd_step "$1" "$2" preflight "Check docker, $PROVIDER and that cluster $NAME exists"
  kd_docker_reachable
  kd_need_tool "$PROVIDER"
  kd_cluster_state "$PROVIDER" "$NAME"
  if [[ $KD_STATE == absent ]]; then
    kd_die "cluster $NAME does not exist ($PROVIDER)"
  fi
}

do_start() {
  local total=3 n=1
  if [[ -n $KUBECONFIG_FILE ]]; then
    total=4
  fi
  kd_context_for "$PROVIDER" "$NAME"
  local context=$REPLY
  preflight "$n" "$total"
  if [[ -n $KUBECONFIG_FILE ]]; then
    kd_need_tool kubectl
    if [[ ! -f $KUBECONFIG_FILE ]]; then
      kd_die "kubeconfig $KUBECONFIG_FILE does not exist"
    fi
  fi
  n=$((n + 1))
  kd_step "$n" "$total" start-cluster "Start the $PROVIDER cluster $NAME"
  if [[ $KD_STATE == running ]]; then
    kd_note "cluster $NAME was already running"
  fi
  if [[ $PROVIDER == k3d ]]; then
    # k3d waits for the nodes by default, with no time limit unless --timeout is given.
    if kd_run -- k3d cluster start "$NAME" --timeout "${WAIT}s"; then :; else
      kd_die "k3d cluster start failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  else
    if kd_run -- docker start "${KD_CONTAINERS[@]}"; then :; else
      kd_die "docker start of the kind nodes failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  fi
  kd_cluster_state "$PROVIDER" "$NAME"
  if [[ $KD_STATE != running ]]; then
    kd_die "cluster $NAME did not start: it is $KD_STATE ($KD_RUNNING/$KD_NODES nodes running)"
  fi
  if [[ -n $KUBECONFIG_FILE ]]; then
    n=$((n + 1))
    kd_step "$n" "$total" wait-ready "Wait until every node is Ready (up to ${WAIT}s)"
    kd_wait_ready "$KUBECONFIG_FILE" "$context" "$WAIT"
  fi
  n=$((n + 1))
  kd_step "$n" "$total" node-address "Find the node address (docker may give a new one after a restart)"
  kd_node_address "$PROVIDER" "$NAME"
  kd_json_obj s name "$NAME" s provider "$PROVIDER" s state running s nodeAddress "$KD_NODE_ADDRESS"
  kd_result "$REPLY"
}

do_stop() {
  local total=2
  preflight 1 "$total"
  kd_step 2 "$total" stop-cluster "Stop the $PROVIDER cluster $NAME"
  if [[ $KD_STATE == stopped ]]; then
    kd_note "cluster $NAME was already stopped"
  fi
  if [[ $PROVIDER == k3d ]]; then
    if kd_run -- k3d cluster stop "$NAME"; then :; else
      kd_die "k3d cluster stop failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  else
    if kd_run -- docker stop "${KD_CONTAINERS[@]}"; then :; else
      kd_die "docker stop of the kind nodes failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  fi
  kd_cluster_state "$PROVIDER" "$NAME"
  if [[ $KD_STATE != stopped ]]; then
    kd_die "cluster $NAME did not stop: it is $KD_STATE ($KD_RUNNING/$KD_NODES nodes running)"
  fi
  kd_json_obj s name "$NAME" s provider "$PROVIDER" s state stopped
  kd_result "$REPLY"
}

do_status() {
  kd_need_tool docker
  kd_cluster_state "$PROVIDER" "$NAME"
  # Every container of the cluster with its role and docker state (what the TUI's cluster view shows).
  local joined="" sep="" row cname crole cstate
  for row in "${KD_CONTAINER_ROWS[@]}"; do
    IFS=$'\t' read -r cname crole cstate <<<"$row"
    kd_json_obj s name "$cname" s role "$crole" s state "$cstate"
    joined+="$sep$REPLY"
    sep=","
  done
  kd_json_obj s name "$NAME" s provider "$PROVIDER" s state "$KD_STATE" n nodes "$KD_NODES" n running "$KD_RUNNING" r containers "[$joined]"
  kd_result "$REPLY"
}

do_list() {
  local -a providers=()
  local -a entries=()
  local p file name line
  local -A seen=()
  if [[ $LIST_PROVIDER == all ]]; then
    providers=(k3d kind)
  else
    providers=("$LIST_PROVIDER")
  fi
  kd_need_tool docker
  for p in "${providers[@]}"; do
    file="$KD_TMP/ps.$p"
    if kd_docker_ps "$p" "$file"; then :; else
      kd_die "cannot list the $p clusters (docker ps exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
    # The distinct cluster names, sorted.
    seen=()
    local -a lines=()
    mapfile -t lines <"$file" || kd_internal "cannot read $file"
    for line in "${lines[@]}"; do
      name=${line%%$'\t'*}
      if [[ -n $line && -n $name ]]; then
        seen[$name]=1
      fi
    done
    if ((${#seen[@]} > 0)); then
      printf '%s\n' "${!seen[@]}" >"$KD_TMP/names.$p" || kd_internal "cannot write $KD_TMP/names.$p"
      sort -o "$KD_TMP/names.$p" "$KD_TMP/names.$p" || kd_internal "sort failed"
      local -a names=()
      mapfile -t names <"$KD_TMP/names.$p" || kd_internal "cannot read $KD_TMP/names.$p"
      for name in "${names[@]}"; do
        kd_tally "$p" "$file" "$name"
        kd_json_obj s name "$name" s provider "$p" s state "$KD_STATE" n nodes "$KD_NODES" n running "$KD_RUNNING"
        entries+=("$REPLY")
      done
    fi
  done
  local joined="" sep="" e
  for e in "${entries[@]}"; do
    joined+="$sep$e"
    sep=","
  done
  kd_json_obj r clusters "[$joined]"
  kd_result "$REPLY"
}

do_import_image() {
  local total=2
  preflight 1 "$total"
  if [[ $KD_STATE != running ]]; then
    kd_die "cluster $NAME is $KD_STATE ($KD_RUNNING/$KD_NODES nodes running); start it before importing images"
  fi
  kd_step 2 "$total" import-image "Import image $IMAGE into cluster $NAME"
  if [[ $PROVIDER == k3d ]]; then
    if kd_run -- k3d image import "$IMAGE" -c "$NAME"; then :; else
      kd_die "k3d image import failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  else
    if kd_run -- kind load docker-image "$IMAGE" --name "$NAME"; then :; else
      kd_die "kind load docker-image failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  fi
  kd_json_obj s name "$NAME" s provider "$PROVIDER" s image "$IMAGE"
  kd_result "$REPLY"
}

# adopt_port CONTAINER PORT: sets REPLY to the host port docker publishes CONTAINER's PORT (e.g. 80/tcp)
# on, from the container's port bindings (a stopped container keeps them); for a binding docker picks at
# start, from `docker port` of the running container. REPLY is empty when PORT is not published.
adopt_port() {
  local c=$1 want=$2 file="$KD_TMP/bindings.out" line p hp
  local -a lines=()
  if kd_run -o "$file" -- docker inspect -f '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{printf "%s %s\n" $p .HostPort}}{{end}}{{end}}' "$c"; then :; else
    kd_die "docker inspect $c failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
  mapfile -t lines <"$file" || kd_internal "cannot read $file"
  REPLY=""
  for line in "${lines[@]}"; do
    read -r p hp <<<"$line"
    [[ $p == "$want" ]] || continue
    if [[ ${hp:-} =~ ^[0-9]{1,5}$ ]] && ((10#$hp > 0)); then
      REPLY=$((10#$hp))
      return 0
    fi
    # Published on a port docker picks when the container starts: only a running container knows it.
    if kd_run -o "$file" -- docker port "$c" "$want"; then :; else
      kd_die "$want of $c is published on a port docker picks at start, and docker port cannot tell it (exit $KD_RC): $KD_LAST_ERROR; start the cluster and adopt it again" "$KD_RC"
    fi
    mapfile -t lines <"$file" || kd_internal "cannot read $file"
    hp=${lines[0]:-}
    hp=${hp##*:}
    if [[ $hp =~ ^[0-9]{1,5}$ ]] && ((10#$hp > 0)); then
      REPLY=$((10#$hp))
      return 0
    fi
    kd_die "docker port $c $want gave no host port (got '${lines[0]:-}')"
  done
  return 0
}

do_adopt() {
  local total=3 lb cp api_holder ports_holder line cl cname cstate crole servers=0 agents=0 image
  local http https api kubeconfig_dir work
  local -a lines=()
  kd_context_for "$PROVIDER" "$NAME"
  local context=$REPLY
  preflight 1 "$total"
  kd_need_tool kubectl
  kubeconfig_dir=${KUBECONFIG_FILE%/*}
  if [[ ! -d ${kubeconfig_dir:-/} || ! -w ${kubeconfig_dir:-/} ]]; then
    kd_die "kubeconfig directory ${kubeconfig_dir:-/} does not exist or is not writable"
  fi

  kd_step 2 "$total" read-ports "Read the ports docker publishes for $PROVIDER cluster $NAME"
  mapfile -t lines <"$KD_TMP/ps.out" || kd_internal "cannot read $KD_TMP/ps.out"
  lb="" cp=""
  for line in "${lines[@]}"; do
    [[ -n $line ]] || continue
    IFS=$'\t' read -r cl cname cstate crole <<<"$line"
    [[ $cl == "$NAME" ]] || continue
    case "$PROVIDER:$crole" in
      k3d:server | kind:control-plane) servers=$((servers + 1)) ;;
      k3d:agent | kind:worker) agents=$((agents + 1)) ;;
      k3d:loadbalancer | kind:external-load-balancer) lb=$cname ;;
    esac
  done
  kd_first_node_for "$PROVIDER" "$NAME"
  cp=$REPLY
  if [[ $PROVIDER == k3d ]]; then
    # The serverlb publishes the API, HTTP and HTTPS ports; with --no-lb they sit on server-0.
    api_holder=${lb:-$cp}
    ports_holder=$api_holder
  else
    # kind: the API port is on the external load balancer (several control planes) or the control
    # plane; extraPortMappings (80, 443) on the control plane.
    api_holder=${lb:-$cp}
    ports_holder=$cp
  fi
  ((servers > 0)) || kd_die "$PROVIDER cluster $NAME has no server (control-plane) container"
  adopt_port "$api_holder" 6443/tcp
  api=$REPLY
  [[ -n $api ]] || kd_die "$PROVIDER cluster $NAME publishes no host port for the API server (6443/tcp on $api_holder)"
  adopt_port "$ports_holder" 80/tcp
  http=$REPLY
  [[ -n $http ]] || kd_die "$PROVIDER cluster $NAME publishes no host port for ingress HTTP (80/tcp on $ports_holder); kindler manages only clusters with HTTP, HTTPS and API host ports"
  adopt_port "$ports_holder" 443/tcp
  https=$REPLY
  [[ -n $https ]] || kd_die "$PROVIDER cluster $NAME publishes no host port for ingress HTTPS (443/tcp on $ports_holder); kindler manages only clusters with HTTP, HTTPS and API host ports"
  if kd_run -o "$KD_TMP/image.out" -- docker inspect -f '{{.Config.Image}}' "$cp"; then :; else
    kd_die "docker inspect $cp failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
  mapfile -t lines <"$KD_TMP/image.out" || kd_internal "cannot read $KD_TMP/image.out"
  image=${lines[0]:-}
  image=${image//[[:space:]]/}

  kd_step 3 "$total" kubeconfig "Write the kubeconfig $KUBECONFIG_FILE (context $context)"
  if work=$(mktemp -d "$kubeconfig_dir/.kindler-adopt-$NAME.XXXXXX"); then :; else
    kd_die "cannot create a temporary directory in $kubeconfig_dir"
  fi
  ADOPT_WORK=$work
  if [[ $PROVIDER == k3d ]]; then
    if kd_run -o "$work/kubeconfig" -- k3d kubeconfig get "$NAME"; then :; else
      kd_die "k3d kubeconfig get failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  else
    if kd_run -o "$work/kubeconfig" -- kind get kubeconfig --name "$NAME"; then :; else
      kd_die "kind get kubeconfig failed (exit $KD_RC): $KD_LAST_ERROR (kind reads it from the running control plane: start the cluster and adopt it again)" "$KD_RC"
    fi
  fi
  if [[ ! -s $work/kubeconfig ]]; then
    kd_die "$PROVIDER gave an empty kubeconfig for $NAME"
  fi
  if kd_kubeconfig_has_context "$work/kubeconfig" "$context"; then :; else
    kd_die "the kubeconfig $PROVIDER gave has no context $context"
  fi
  chmod 600 "$work/kubeconfig" || kd_die "cannot chmod 600 the kubeconfig"
  mv -f -- "$work/kubeconfig" "$KUBECONFIG_FILE" || kd_die "cannot move the kubeconfig into place at $KUBECONFIG_FILE"

  kd_json_obj s name "$NAME" s provider "$PROVIDER" s state "$KD_STATE" n nodes "$KD_NODES" n running "$KD_RUNNING" \
    n servers "$servers" n agents "$agents" n httpPort "$http" n httpsPort "$https" n apiPort "$api" \
    s image "$image" s kubeContext "$context" s kubeconfig "$KUBECONFIG_FILE"
  kd_result "$REPLY"
}

# shellcheck disable=SC2317 # called from kd_on_exit
kd_cleanup_hook() {
  if [[ -n ${ADOPT_WORK:-} && -d $ADOPT_WORK ]]; then
    rm -rf -- "$ADOPT_WORK"
  fi
}
ADOPT_WORK=""

case $SUB in
  adopt) do_adopt ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  list) do_list ;;
  import-image) do_import_image ;;
esac
exit 0
