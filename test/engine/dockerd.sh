#!/usr/bin/env bash
# A private docker engine for the test suites, all of it under one directory:
#   dockerd.sh start DIR   start dockerd (data, exec root, pid file, socket in DIR), wait until it
#                          answers, print its address (unix://DIR/docker.sock) on stdout
#   dockerd.sh stop DIR    stop it (TERM, then KILL after 20 s), keeping its data: a later start
#                          finds the same containers, networks and volumes
#   dockerd.sh destroy DIR stop it and remove DIR
# It runs without iptables, masquerading or the default bridge (as on the CI machines), with the
# vfs storage driver, so it needs root but no kernel features beyond namespaces.
# A start that fails prints the daemon's own last error line on stderr and exits 1.
set -Eeuo pipefail
cmd=${1:-} dir=${2:-}
[[ $cmd == start || $cmd == stop || $cmd == destroy ]] && [[ -n $dir ]] || { echo "usage: dockerd.sh start|stop|destroy DIR" >&2; exit 2; }

case $cmd in
  start)
    command -v dockerd >/dev/null 2>&1 || { echo "dockerd: command not found (install Debian's docker.io)" >&2; exit 1; }
    mkdir -p "$dir"
    sock="$dir/docker.sock"
    # setsid: the engine is not in the caller's process group, so a Ctrl-C or a group kill of the
    # test run does not take it down before the stop below runs.
    setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/pid" -H "unix://$sock" \
      --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
      >"$dir/dockerd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/launcher.pid"
    deadline=$((SECONDS + 60))
    until DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; do
      if ! kill -0 "$pid" 2>/dev/null; then
        line=$(grep -iE 'level=(error|fatal)|failed|error' "$dir/dockerd.log" | tail -1 || true)
        echo "dockerd exited: ${line:-$(tail -1 "$dir/dockerd.log" 2>/dev/null)}" >&2
        exit 1
      fi
      if ((SECONDS > deadline)); then
        echo "dockerd did not answer within 60 s: $(tail -1 "$dir/dockerd.log" 2>/dev/null)" >&2
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
      fi
      sleep 0.1
    done
    echo "unix://$sock"
    ;;
  stop|destroy)
    [[ -d $dir ]] || exit 0
    pid=$(cat "$dir/pid" 2>/dev/null || cat "$dir/launcher.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then echo "dockerd.sh: dockerd $pid ignored TERM for 20 s; killing it" >&2; kill -KILL "$pid"; fi
    fi
    # containerd shims of a killed engine would keep container processes alive
    pkill -KILL -f "containerd-shim.*$dir/" 2>/dev/null || true
    rm -f "$dir/docker.sock" "$dir/pid"
    if [[ $cmd == destroy ]]; then
      # the engine's own mounts (netns files under the exec root) go before the directory
      while read -r _ mnt _; do case $mnt in "$dir"/*) umount -l "$mnt" ;; esac; done < <(tac /proc/self/mounts)
      rm -rf "$dir"
    fi
    ;;
esac
