#!/usr/bin/env bash
# cluster.sh - operations on existing k3d/kind clusters:
#   start | stop | status | list | import-image   (the subcommand comes first, then flags)
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
See scripts/README.md.
EOF
}

SUB=${1-}
case $SUB in
  start | stop | status | list | import-image) shift ;;
  -h | --help)
    kd_usage
    exit 0
    ;;
  "") kd_usage_error subcommand "is required: start, stop, status, list or import-image" ;;
  *) kd_usage_error "$SUB" "unknown subcommand (start, stop, status, list or import-image)" ;;
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
      kd_check_int wait-timeout "${KD_FLAG[wait-timeout]}" 1 86400
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
  kd_json_obj s name "$NAME" s provider "$PROVIDER" s state "$KD_STATE" n nodes "$KD_NODES" n running "$KD_RUNNING"
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

case $SUB in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  list) do_list ;;
  import-image) do_import_image ;;
esac
exit 0
