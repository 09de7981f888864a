#!/usr/bin/env bash
# delete_env.sh - delete one k3d or kind cluster and its kindler kubeconfig. Idempotent: a cluster
# that is already gone is a note, not an error. Prints ::kindler: markers (see scripts/README.md).
set -Eeuo pipefail
kd_here=${BASH_SOURCE[0]%/*}
if [[ $kd_here == "${BASH_SOURCE[0]}" ]]; then
  kd_here=.
fi
# shellcheck source=lib/common.sh
source "$kd_here/lib/common.sh"

kd_usage() {
  cat <<'EOF'
usage: delete_env.sh --name NAME --provider k3d|kind --kubeconfig FILE
Steps: preflight, delete-cluster, remove-kubeconfig. See scripts/README.md.
EOF
}

kd_parse_flags name provider kubeconfig -- "$@"
kd_require name provider kubeconfig
kd_check_provider provider "${KD_FLAG[provider]}"
PROVIDER=${KD_FLAG[provider]}
kd_check_name "${KD_FLAG[name]}" "$PROVIDER"
NAME=${KD_FLAG[name]}
kd_check_path kubeconfig "${KD_FLAG[kubeconfig]}"
KUBECONFIG_FILE=${KD_FLAG[kubeconfig]}

kd_init
TOTAL=3

# ---- 1 preflight ------------------------------------------------------------------------------
kd_step 1 "$TOTAL" preflight "Check docker and $PROVIDER"
kd_docker_reachable
kd_need_tool "$PROVIDER"

# ---- 2 delete-cluster -------------------------------------------------------------------------
kd_step 2 "$TOTAL" delete-cluster "Delete the $PROVIDER cluster $NAME"
kd_cluster_state "$PROVIDER" "$NAME"
DELETED=false
if [[ $KD_STATE == absent ]]; then
  kd_note "$PROVIDER cluster $NAME was already absent"
else
  if [[ $PROVIDER == k3d ]]; then
    if kd_run -- k3d cluster delete "$NAME"; then :; else
      kd_die "k3d cluster delete failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  else
    # kind removes the kind-NAME entries from the kubeconfig it is given, and only from that one.
    kc=$KUBECONFIG_FILE
    if [[ ! -f $kc ]]; then
      kc="$KD_TMP/kubeconfig.guard"
    fi
    if kd_run -- kind delete cluster --name "$NAME" --kubeconfig "$kc"; then :; else
      kd_die "kind delete cluster failed (exit $KD_RC): $KD_LAST_ERROR" "$KD_RC"
    fi
  fi
  # The tool's exit status is not proof (k3d delete exits 0 when docker is down): ask docker.
  kd_cluster_state "$PROVIDER" "$NAME"
  if [[ $KD_STATE != absent ]]; then
    kd_die "$PROVIDER cluster $NAME still has ${#KD_CONTAINERS[@]} container(s) after the delete: ${KD_CONTAINERS[*]}"
  fi
  DELETED=true
fi

# ---- 3 remove-kubeconfig ----------------------------------------------------------------------
kd_step 3 "$TOTAL" remove-kubeconfig "Remove the kubeconfig $KUBECONFIG_FILE"
if [[ -d $KUBECONFIG_FILE && ! -L $KUBECONFIG_FILE ]]; then
  kd_die "kubeconfig path $KUBECONFIG_FILE is a directory; not removing it"
elif [[ -e $KUBECONFIG_FILE || -L $KUBECONFIG_FILE ]]; then
  rm -f -- "$KUBECONFIG_FILE" || kd_die "cannot remove $KUBECONFIG_FILE"
  if [[ -e $KUBECONFIG_FILE || -L $KUBECONFIG_FILE ]]; then
    kd_die "$KUBECONFIG_FILE is still there after rm"
  fi
else
  kd_note "kubeconfig $KUBECONFIG_FILE was already absent"
fi

kd_json_obj s name "$NAME" s provider "$PROVIDER" b deleted "$DELETED"
kd_result "$REPLY"
exit 0
