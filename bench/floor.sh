#!/usr/bin/env bash
# The floor a deploy is measured against: the least work that takes fresh test hosts to the
# same healthy stack, with no deploy tool. Per host: install the packages the deployer
# installed, stream the images the deployer loaded there into `docker load` (the archive cut
# down to them, as the deployer ships it, cut before the clock starts), unpack the compose projects
# the deployer rendered (bench/bench.py copies them from the deployer's hosts), then
# `docker compose up -d --wait` in the deployer's order: data services, the release command
# once, the app, nginx. Hosts work in parallel where the deployer's tiers allow it.
#
#   bench/floor.sh ARCHIVE BUNDLE_DIR HOST...
# BUNDLE_DIR holds HOST.tar (the files to unpack at /), HOST.packages (one package a line)
# HOST.tags ("IMAGE_ID TAG" lines: tags the deployer gave loaded images) and, when the host
# runs only some of the archive's images, HOST.images (the archive cut down to them) for each HOST.
# The first HOST runs the release command ($FLOOR_RELEASE_COMMAND, if set).
set -euo pipefail
archive=$1 bundles=$2
shift 2
hosts=("$@")
stack=${FLOOR_STACK:-shop}

prepare() {  # host: packages, images, files, network
  local host=$1
  docker exec "$host" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $(tr '\n' ' ' <"$bundles/$host.packages") >/dev/null"
  local images=$archive
  if [ -f "$bundles/$host.images" ]; then images=$bundles/$host.images; fi
  docker exec -i "$host" docker load -q <"$images" >/dev/null
  while read -r id tag; do docker exec "$host" docker tag "$id" "$tag"; done <"$bundles/$host.tags"
  docker exec -i "$host" tar -C / -xpf - --numeric-owner <"$bundles/$host.tar"
  docker exec "$host" docker network create "$stack" >/dev/null
}

up() {  # host project: bring one compose project up if the host has it, wait for healthy
  local host=$1 project=$2
  if docker exec "$host" test -f "/opt/$stack/$project/compose.yaml"; then
    docker exec "$host" docker compose -f "/opt/$stack/$project/compose.yaml" up -d --wait --quiet-pull 2>/dev/null
  fi
}

on_all() {  # run "$@ host" for every host in parallel, fail if any failed
  local pids=() failed=0
  for host in "${hosts[@]}"; do "$@" "$host" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  return $failed
}

up_project() { up "$2" "$1"; }

on_all prepare
on_all up_project postgres
on_all up_project redis
if [ -n "${FLOOR_RELEASE_COMMAND:-}" ]; then
  # shellcheck disable=SC2086  # the command is a plain word list
  docker exec "${hosts[0]}" docker compose -f "/opt/$stack/app/compose.yaml" --profile release \
    run --rm release $FLOOR_RELEASE_COMMAND >/dev/null 2>&1
fi
on_all up_project app
on_all up_project nginx
