#!/usr/bin/env bash
# create_env.sh - create one k3d or kind cluster for kindler and write its kubeconfig.
# Prints ::kindler: markers on stdout (see scripts/README.md); never writes kindler's state and
# never touches the user's kubeconfig or current context. A failed or interrupted create removes
# what it made (never a cluster it did not create).
set -Eeuo pipefail
kd_here=${BASH_SOURCE[0]%/*}
if [[ $kd_here == "${BASH_SOURCE[0]}" ]]; then
  kd_here=.
fi
# shellcheck source=lib/common.sh
source "$kd_here/lib/common.sh"

kd_usage() {
  cat <<'EOF'
usage: create_env.sh --name NAME --provider k3d|kind --http-port PORT --https-port PORT
                     --api-port PORT --kubeconfig FILE [--servers N (1)] [--agents N (0)]
                     [--image IMAGE] [--subnet CIDR (k3d only)] [--wait-timeout SECONDS (180)]
                     [--api-address IPV4 (publish the API there and add it to its certificate)]
Steps: preflight, create-cluster, kubeconfig, wait-ready, [kind: ingress,] node-address. See scripts/README.md.
EOF
}

kd_parse_flags name provider servers agents http-port https-port api-port kubeconfig image subnet wait-timeout api-address -- "$@"
kd_require name provider http-port https-port api-port kubeconfig
kd_check_provider provider "${KD_FLAG[provider]}"
PROVIDER=${KD_FLAG[provider]}
kd_check_name "${KD_FLAG[name]}" "$PROVIDER" new
NAME=${KD_FLAG[name]}
SERVERS=${KD_FLAG[servers]:-1}
AGENTS=${KD_FLAG[agents]:-0}
WAIT=${KD_FLAG[wait-timeout]:-180}
kd_check_count servers "$SERVERS"
kd_check_count agents "$AGENTS"
kd_check_wait_timeout wait-timeout "$WAIT"
SERVERS=$((10#$SERVERS)) AGENTS=$((10#$AGENTS)) WAIT=$((10#$WAIT))
kd_check_cluster_ports http-port="${KD_FLAG[http-port]}" https-port="${KD_FLAG[https-port]}" api-port="${KD_FLAG[api-port]}"
HTTP_PORT=$((10#${KD_FLAG[http-port]}))
HTTPS_PORT=$((10#${KD_FLAG[https-port]}))
API_PORT=$((10#${KD_FLAG[api-port]}))
kd_check_path kubeconfig "${KD_FLAG[kubeconfig]}"
KUBECONFIG_FILE=${KD_FLAG[kubeconfig]}
KUBECONFIG_DIR=${KUBECONFIG_FILE%/*}
KUBECONFIG_DIR=${KUBECONFIG_DIR:-/}
IMAGE=""
if kd_has image; then
  kd_check_image image "${KD_FLAG[image]}"
  IMAGE=${KD_FLAG[image]}
fi
SUBNET=""
if kd_has subnet; then
  [[ $PROVIDER == k3d ]] || kd_usage_error --subnet "$KD_RULE_SUBNET_KIND_RULE"
  kd_check_subnet subnet "${KD_FLAG[subnet]}"
  SUBNET=${KD_FLAG[subnet]}
fi
API_ADDRESS=127.0.0.1
if kd_has api-address; then
  kd_check_api_address api-address "${KD_FLAG[api-address]}"
  API_ADDRESS=${KD_FLAG[api-address]}
fi
kd_context_for "$PROVIDER" "$NAME"
CONTEXT=$REPLY

# State for the cleanup hook.
CREATE_STARTED=0   # step 2 began: the cluster may exist (partly) from now on
CREATE_FOREIGN=0   # the provider said the name is taken: the cluster is not ours, never delete it
CREATE_DONE=0      # the result was printed
WORK=""            # temp dir next to the kubeconfig (same filesystem, for an atomic mv)
# k3d makes a network k3d-NAME and a volume k3d-NAME-images. If it is killed half-way they can be
# left without any container, where `k3d cluster delete` no longer finds them. The cleanup removes
# them only when preflight saw that they did not exist before (1 = existed, 0 = did not).
K3D_NET="k3d-$NAME"
K3D_VOL="k3d-$NAME-images"
K3D_NET_BEFORE=1
K3D_VOL_BEFORE=1

# kind has no ingress controller of its own: create applies this pinned, shipped manifest (never a download).
INGRESS_MANIFEST="$kd_here/manifests/ingress-nginx-kind-v1.12.1.yaml"
INGRESS_NS=ingress-nginx
INGRESS_DEPLOYMENT=ingress-nginx-controller

kd_init
TOTAL=5
if [[ $PROVIDER == kind ]]; then
  TOTAL=6
fi

# ---- cleanup (runs from the EXIT trap) ------------------------------------------------------
# shellcheck disable=SC2317 # called from kd_on_exit
kd_cleanup_hook() {
  local rc=$1 problems="" what
  if ((rc == 0 || CREATE_DONE)); then
    kd_remove_work
    return 0
  fi
  if ((CREATE_STARTED == 0)); then
    # Nothing was created: only our temp files exist.
    kd_remove_work
    return 0
  fi
  kd_marker "cleanup begin"
  if ((CREATE_FOREIGN)); then
    kd_note "not deleting $PROVIDER cluster $NAME: the provider reports it already existed, so this create did not make it"
  else
    if [[ $PROVIDER == k3d ]]; then
      what="k3d cluster delete"
      if kd_run -- k3d cluster delete "$NAME"; then :; else
        problems+="$what failed (exit $KD_RC): $KD_LAST_ERROR; "
      fi
    else
      what="kind delete cluster"
      local kc="$KD_TMP/kubeconfig.guard"
      if [[ -n $WORK && -f $WORK/kubeconfig ]]; then
        kc="$WORK/kubeconfig"
      fi
      if kd_run -- kind delete cluster --name "$NAME" --kubeconfig "$kc"; then :; else
        problems+="$what failed (exit $KD_RC): $KD_LAST_ERROR; "
      fi
    fi
    if [[ $PROVIDER == k3d ]]; then
      kd_remove_leftover network "$K3D_NET" "$K3D_NET_BEFORE"
      kd_remove_leftover volume "$K3D_VOL" "$K3D_VOL_BEFORE"
    fi
    # Trust docker, not the tool's exit status (k3d delete exits 0 even when docker is down).
    if kd_docker_ps "$PROVIDER" "$KD_TMP/ps.cleanup" "$NAME"; then
      kd_tally "$PROVIDER" "$KD_TMP/ps.cleanup" "$NAME"
      if [[ $KD_STATE != absent ]]; then
        problems+="$PROVIDER cluster $NAME still has ${#KD_CONTAINERS[@]} container(s): ${KD_CONTAINERS[*]}; "
      fi
    else
      problems+="cannot verify that $PROVIDER cluster $NAME is gone (docker ps exit $KD_RC): $KD_LAST_ERROR; "
    fi
  fi
  if [[ -e $KUBECONFIG_FILE || -L $KUBECONFIG_FILE ]]; then
    if rm -f -- "$KUBECONFIG_FILE"; then :; else
      problems+="cannot remove $KUBECONFIG_FILE; "
    fi
  fi
  if kd_remove_work; then :; else
    problems+="cannot remove temp dir $WORK; "
  fi
  if [[ -z $problems ]]; then
    kd_marker "cleanup done"
  else
    kd_oneline "${problems%; }"
    kd_marker "cleanup failed $REPLY"
  fi
}

# kd_docker_has network|volume NAME: 0 when docker lists it, 1 when not, 2 when docker failed.
kd_docker_has() {
  local out="$KD_TMP/$1.ls" n
  local -a names=()
  if kd_run -o "$out" -- docker "$1" ls --format '{{.Name}}'; then :; else
    return 2
  fi
  if mapfile -t names <"$out"; then :; else
    KD_LAST_ERROR="cannot read $out"
    return 2
  fi
  for n in "${names[@]}"; do
    if [[ $n == "$2" ]]; then
      return 0
    fi
  done
  return 1
}

# shellcheck disable=SC2317 # called from the cleanup hook
# kd_remove_leftover network|volume NAME EXISTED_BEFORE: adds to $problems on failure.
kd_remove_leftover() {
  local kind=$1 name=$2 before=$3 rc
  if ((before)); then
    return 0
  fi
  if kd_docker_has "$kind" "$name"; then rc=0; else rc=$?; fi
  case $rc in
    0)
      if kd_run -o /dev/null -- docker "$kind" rm "$name"; then :; else
        problems+="docker $kind rm $name failed (exit $KD_RC): $KD_LAST_ERROR; "
      fi
      ;;
    1) ;;
    *) problems+="cannot list docker ${kind}s (exit $KD_RC): $KD_LAST_ERROR; " ;;
  esac
}

# shellcheck disable=SC2317 # called from the cleanup hook
kd_remove_work() {
  if [[ -n $WORK && -d $WORK ]]; then
    if rm -rf -- "$WORK"; then
      WORK=""
    else
      return 1
    fi
  fi
  return 0
}

# ---- 1 preflight ------------------------------------------------------------------------------
kd_step 1 "$TOTAL" preflight "Check docker, $PROVIDER, host ports and the cluster name"
kd_docker_reachable
kd_need_tool "$PROVIDER"
kd_need_tool kubectl
kd_check_ports_free "http-port=$HTTP_PORT" "https-port=$HTTPS_PORT" "api-port=$API_PORT"
if [[ ! -d $KUBECONFIG_DIR ]]; then
  kd_die "kubeconfig directory $KUBECONFIG_DIR does not exist"
fi
if [[ ! -w $KUBECONFIG_DIR ]]; then
  kd_die "kubeconfig directory $KUBECONFIG_DIR is not writable"
fi
if [[ -d $KUBECONFIG_FILE ]]; then
  kd_die "kubeconfig path $KUBECONFIG_FILE is a directory"
fi
if [[ $PROVIDER == kind && ! -r $INGRESS_MANIFEST ]]; then
  kd_die "the ingress manifest $INGRESS_MANIFEST is missing or unreadable (it ships with kindler's scripts)"
fi
kd_cluster_state "$PROVIDER" "$NAME"
if [[ $KD_STATE != absent ]]; then
  kd_die "a $PROVIDER cluster named $NAME already exists ($KD_STATE, $KD_RUNNING/$KD_NODES nodes running); it is left untouched"
fi
if [[ $PROVIDER == k3d ]]; then
  for obj in network volume; do
    if [[ $obj == network ]]; then
      objname=$K3D_NET
    else
      objname=$K3D_VOL
    fi
    if kd_docker_has "$obj" "$objname"; then
      kd_note "docker $obj $objname already exists: k3d will re-use it, and it is kept if the create fails"
    else
      rc=$?
      if ((rc != 1)); then
        kd_die "cannot list docker ${obj}s (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
      fi
      if [[ $obj == network ]]; then
        K3D_NET_BEFORE=0
      else
        K3D_VOL_BEFORE=0
      fi
    fi
  done
fi
if [[ -e $KUBECONFIG_FILE ]]; then
  kd_note "kubeconfig $KUBECONFIG_FILE exists from an earlier cluster named $NAME and will be replaced"
fi
if WORK=$(mktemp -d "$KUBECONFIG_DIR/.kindler-create-$NAME.XXXXXX"); then :; else
  WORK=""
  kd_die "cannot create a temporary directory in $KUBECONFIG_DIR"
fi

# ---- 2 create-cluster -------------------------------------------------------------------------
kd_step 2 "$TOTAL" create-cluster "Create the $PROVIDER cluster $NAME ($SERVERS server(s), $AGENTS agent(s))"
if [[ $PROVIDER == k3d ]]; then
  args=(cluster create "$NAME"
    --servers "$SERVERS" --agents "$AGENTS"
    --api-port "$API_ADDRESS:$API_PORT"
    -p "$HTTP_PORT:80@loadbalancer" -p "$HTTPS_PORT:443@loadbalancer"
    --wait --timeout "${WAIT}s"
    --kubeconfig-update-default=false --kubeconfig-switch-context=false)
  if [[ -n $IMAGE ]]; then
    args+=(--image "$IMAGE")
  fi
  if [[ -n $SUBNET ]]; then
    args+=(--subnet "$SUBNET")
  fi
  if [[ $API_ADDRESS != 127.0.0.1 ]]; then
    # Clients name this address: it must be in the API certificate (k3d adds its --api-port host too).
    args+=(--k3s-arg "--tls-san=$API_ADDRESS@server:*")
  fi
else
  cfg="$WORK/kind-config.yaml"
  printf -v yaml '%s\n' \
    'apiVersion: kind.x-k8s.io/v1alpha4' \
    'kind: Cluster' \
    "name: $NAME" \
    'networking:' \
    "  apiServerAddress: \"$API_ADDRESS\"" \
    "  apiServerPort: $API_PORT" \
    'nodes:' \
    '- role: control-plane' \
    '  labels:' \
    '    ingress-ready: "true"' \
    '  extraPortMappings:' \
    '  - containerPort: 80' \
    "    hostPort: $HTTP_PORT" \
    '    listenAddress: "0.0.0.0"' \
    '    protocol: TCP' \
    '  - containerPort: 443' \
    "    hostPort: $HTTPS_PORT" \
    '    listenAddress: "0.0.0.0"' \
    '    protocol: TCP'
  for ((i = 1; i < SERVERS; i++)); do
    yaml+=$'- role: control-plane\n'
  done
  for ((i = 0; i < AGENTS; i++)); do
    yaml+=$'- role: worker\n'
  done
  if [[ $API_ADDRESS != 127.0.0.1 ]]; then
    # Clients name this address: put it in the API certificate, next to the names kind puts there.
    printf -v patch '%s\n' \
      'kubeadmConfigPatches:' \
      '- |' \
      '  kind: ClusterConfiguration' \
      '  apiServer:' \
      '    certSANs:' \
      "    - \"$API_ADDRESS\"" \
      '    - "127.0.0.1"' \
      '    - "localhost"'
    yaml+=$patch
  fi
  printf '%s' "$yaml" >"$cfg" || kd_die "cannot write the kind config $cfg"
  args=(create cluster --name "$NAME" --config "$cfg" --kubeconfig "$WORK/kubeconfig" --wait "${WAIT}s")
  if [[ -n $IMAGE ]]; then
    args+=(--image "$IMAGE")
  fi
fi
CREATE_STARTED=1
if kd_run -- "$PROVIDER" "${args[@]}"; then :; else
  rc=$KD_RC
  case $KD_LAST_ERROR in
    *'a cluster with that name already exists'* | *'node(s) already exist for a cluster'*) CREATE_FOREIGN=1 ;;
  esac
  if [[ $PROVIDER == k3d ]]; then
    kd_die "k3d cluster create failed (exit $rc): $KD_LAST_ERROR" "$rc"
  fi
  kd_die "kind create cluster failed (exit $rc): $KD_LAST_ERROR" "$rc"
fi

# ---- 3 kubeconfig -----------------------------------------------------------------------------
kd_step 3 "$TOTAL" kubeconfig "Write the kubeconfig $KUBECONFIG_FILE (context $CONTEXT)"
if [[ $PROVIDER == k3d ]]; then
  if kd_run -o "$WORK/kubeconfig" -- k3d kubeconfig get "$NAME"; then :; else
    kd_die "k3d kubeconfig get failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
fi
if [[ ! -s $WORK/kubeconfig ]]; then
  kd_die "$PROVIDER did not produce a kubeconfig for $NAME (empty or missing)"
fi
if kd_kubeconfig_has_context "$WORK/kubeconfig" "$CONTEXT"; then :; else
  kd_die "the kubeconfig $PROVIDER produced has no context $CONTEXT"
fi
chmod 600 "$WORK/kubeconfig" || kd_die "cannot chmod 600 the new kubeconfig"
mv -f -- "$WORK/kubeconfig" "$KUBECONFIG_FILE" || kd_die "cannot move the kubeconfig into place at $KUBECONFIG_FILE"

# ---- 4 wait-ready -----------------------------------------------------------------------------
kd_step 4 "$TOTAL" wait-ready "Wait until every node is Ready (up to ${WAIT}s)"
kd_wait_ready "$KUBECONFIG_FILE" "$CONTEXT" "$WAIT"

# ---- 5 ingress (kind only) ----------------------------------------------------------------------
if [[ $PROVIDER == kind ]]; then
  kd_step 5 "$TOTAL" ingress "Install ingress-nginx from ${INGRESS_MANIFEST##*/} and wait until it is available (up to ${WAIT}s)"
  if kd_run -- kubectl --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT" apply -f "$INGRESS_MANIFEST"; then :; else
    kd_die "installing ingress-nginx failed (kubectl apply exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
  if kd_run -- kubectl --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT" -n "$INGRESS_NS" wait --for=condition=available "deployment/$INGRESS_DEPLOYMENT" "--timeout=${WAIT}s"; then :; else
    kd_die "ingress-nginx did not become available within ${WAIT}s (kubectl wait exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
  fi
fi

# ---- node-address -----------------------------------------------------------------------------
kd_step "$TOTAL" "$TOTAL" node-address "Find the node address"
kd_node_address "$PROVIDER" "$NAME"

kd_json_obj s name "$NAME" s provider "$PROVIDER" s kubeContext "$CONTEXT" s kubeconfig "$KUBECONFIG_FILE" \
  s nodeAddress "$KD_NODE_ADDRESS" n httpPort "$HTTP_PORT" n httpsPort "$HTTPS_PORT" n apiPort "$API_PORT" \
  n servers "$SERVERS" n agents "$AGENTS"
trap '' TERM INT HUP # done: a late signal must not undo a cluster that was reported created
CREATE_DONE=1
kd_result "$REPLY"
exit 0
