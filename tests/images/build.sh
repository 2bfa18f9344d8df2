#!/usr/bin/env bash
# Builds every image the tests and the sandbox need, from code in this repository, because
# this machine reaches no container registry. Each step is skipped when its inputs did not
# change: the base image carries a hash of this script, Dockerfile builds use Docker's layer
# cache, and the archive is re-saved only when an image in it changed.
#
#   tests/images/build.sh            build everything
#   tests/images/build.sh --hosts-only   only the base and test-host images
#   tests/images/build.sh --print        print the archive path (used by inventories and Molecule)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache_dir="${DEPLOYER_CACHE_DIR:-$repo/.cache}"
archive="$cache_dir/images/stack-images.tar"

base_image=deployer-test/debian:trixie
# Test hosts: a plain Debian 13 server, and the same with Docker Engine already installed.
host_images=(
  "deployer-test/host:trixie host"
  "deployer-test/host-docker:trixie host-docker"
)
# Images the stack runs: stand-ins for the official images (no registry here) and the
# sample application. They are shipped to test hosts in one archive.
stack_images=(
  "deployer-test/postgres:17 postgres"
  "deployer-test/redis:8 redis"
  "deployer-test/nginx:1.26 nginx"
  "deployer-sample/app:1 $repo/sample_app"
)

if [ "${1:-}" = "--print" ]; then echo "$archive"; exit 0; fi

log() { printf '[images] %s\n' "$*"; }

build_base() {
  local key
  # Keyed on this function's own text, so editing the rest of the script (another test image,
  # a new archive) does not rebuild the base and with it every image built on it.
  key=$(declare -f build_base | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "deployer.inputs" }}' "$base_image" 2>/dev/null)" = "$key" ]; then
    log "$base_image is current"
    return
  fi
  if timeout 30 docker pull -q debian:trixie >/dev/null 2>&1; then
    log "building $base_image from debian:trixie"
    printf 'FROM debian:trixie\nLABEL deployer.inputs=%s\n' "$key" | docker build -q -t "$base_image" - >/dev/null
    return
  fi
  log "no registry: building $base_image with debootstrap"
  local rootfs
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase trixie "$rootfs" http://deb.debian.org/debian >"$rootfs.log" 2>&1 ||
    { cat "$rootfs.log"; exit 1; }
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  # What debian:trixie sets up and debootstrap does not: mirror over plain HTTP (containers
  # here have no CA path to an HTTPS mirror) and no recommends or docs in image layers.
  echo 'deb http://deb.debian.org/debian trixie main' >"$rootfs/etc/apt/sources.list"
  echo 'deb http://deb.debian.org/debian-security trixie-security main' >>"$rootfs/etc/apt/sources.list"
  printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
  tar -C "$rootfs" -c . | docker import -c "LABEL deployer.inputs=$key" -c 'CMD ["/bin/bash"]' - "$base_image" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

build_dir() {  # name dir
  local name=$1 dir=$2
  [ "${dir:0:1}" = / ] || dir="$here/$dir"
  log "building $name"
  # The legacy builder: this Docker has no buildx. Its output is shown only when it fails.
  local out
  out=$(DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$base_image" -t "$name" "$dir" 2>&1) ||
    { printf '%s\n' "$out"; exit 1; }
}

save_archive() {
  local names=() ids stamp="$archive.ids"
  for entry in "${stack_images[@]}"; do names+=("${entry%% *}"); done
  ids=$(docker image inspect -f '{{ .Id }}' "${names[@]}" | tr '\n' ' ')
  if [ -f "$archive" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ids" ]; then
    log "$archive is current"
    return
  fi
  mkdir -p "$(dirname "$archive")"
  log "saving ${names[*]} to $archive"
  docker save -o "$archive.part" "${names[@]}"
  mv "$archive.part" "$archive"
  echo "$ids" >"$stamp"
}

build_base
for entry in "${host_images[@]}"; do build_dir $entry; done
[ "${1:-}" = "--hosts-only" ] && exit 0
for entry in "${stack_images[@]}"; do build_dir $entry; done
save_archive
