#!/usr/bin/env bash
# Builds the test node image (default kindler-node:test) on the engine at DOCKER_HOST, from a static
# busybox and standin-init, with no network pull: a tar of a directory, `docker import`ed. The image
# carries a label with the hash of its inputs; an image whose label matches is kept as it is.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${1:-${KINDLER_STANDIN_IMAGE:-kindler-node:test}}

bb=${KINDLER_BUSYBOX:-}
if [[ -z $bb ]]; then
  for c in /bin/busybox /usr/bin/busybox; do [[ -x $c ]] && { bb=$c; break; }; done
fi
[[ -n $bb && -x $bb ]] || { echo "image.sh: no busybox found (install Debian's busybox-static)" >&2; exit 1; }
# The image has no C library: the busybox in it must be static.
if LC_ALL=C ldd "$bb" >/dev/null 2>&1; then
  echo "image.sh: $bb is dynamically linked; the test image needs a static one (Debian's busybox-static)" >&2
  exit 1
fi

hash=$(cat "$bb" "$here/standin-init" | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{index .Config.Labels "kindler.image.inputs"}}' "$image" 2>/dev/null || true)
if [[ $have == "$hash" ]]; then
  echo "image.sh: $image is current ($hash)"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc" "$root/var/lib/kindler-standin/images"
cp "$bb" "$root/bin/busybox"
for a in sh httpd nc sleep cat echo mkdir mv ls rm hostname tar wc; do ln -s busybox "$root/bin/$a"; done
cp "$here/standin-init" "$root/standin-init"
chmod 1777 "$root/tmp"
tar -C "$root" -c . | docker import \
  --change 'ENTRYPOINT ["/standin-init"]' \
  --change 'ENV PATH=/bin' \
  --change "LABEL kindler.image.inputs=$hash" \
  - "$image" >/dev/null
echo "image.sh: built $image ($hash)"
