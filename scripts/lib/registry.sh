# Shell helpers for scripts that need a local registry: source this file, then call
# `registry_start DIR` (sets REGISTRY_HOST, REGISTRY_PID; REGISTRY_EXTRA is appended to the
# registry's config, e.g. `notifications:`) and `push_image REPO TAG...`.
# Needs /usr/bin/docker-registry (apt: docker-registry), curl, gzip and sha256sum.

registry_start() {
  local dir=$1 port=${2:-5000}
  mkdir -p "$dir"
  # The first free loopback port from $port on.
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  REGISTRY_HOST="127.0.0.1:$port"
  REGISTRY_DIR=$dir
  cat >"$dir/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $dir/storage } }
http: { addr: "$REGISTRY_HOST" }
${REGISTRY_EXTRA:-}
YAML
  /usr/bin/docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do
    curl -fsS "http://$REGISTRY_HOST/v2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$dir/registry.log" >&2
  return 1
}

registry_stop() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  REGISTRY_PID=""
}

# Monolithic blob upload; prints the blob's digest.
push_blob() {
  local repo=$1 file=$2 base="http://$REGISTRY_HOST" digest location sep
  digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  location=$(curl -fsS -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" |
    awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
  case $location in http*) ;; *) location="$base$location" ;; esac
  case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$file" \
    "$location${sep}digest=$digest" >/dev/null
  echo "$digest"
}

# Pushes a tiny one-layer image to REPO and tags it with every TAG.
push_image() {
  local repo=$1 work="$REGISTRY_DIR/push" config layer
  shift
  mkdir -p "$work"
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"repo":"%s"}}}' "$repo" >"$work/config.json"
  printf 'layer of %s\n' "$repo" | gzip -n >"$work/layer.tar.gz"
  config=$(push_blob "$repo" "$work/config.json")
  layer=$(push_blob "$repo" "$work/layer.tar.gz")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$config" "$(stat -c %s "$work/config.json")" "$layer" "$(stat -c %s "$work/layer.tar.gz")" >"$work/manifest.json"
  for tag in "$@"; do
    curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
      --data-binary @"$work/manifest.json" "http://$REGISTRY_HOST/v2/$repo/manifests/$tag" >/dev/null
  done
}

# `registry_seed_many PREFIX REPOS TAGS`: repositories PREFIX-0 .. PREFIX-(REPOS-1), each with TAGS
# tags 1.A.B (1.0.0, 1.0.1, .. 1.0.99, 1.1.0, ..; the newest is 1.(TAGS/100-1).99 for a multiple
# of 100). One image is pushed through the API under 1.0.0; the other tags and repositories are
# copies of its storage links, which is the state pushing each would leave, in a second rather
# than minutes. Call it while the registry runs, before anything reads those repositories.
registry_seed_many() {
  local prefix=$1 repos=$2 tags=$3 i tag
  push_image "$prefix-0" 1.0.0
  local store="$REGISTRY_DIR/storage/docker/registry/v2/repositories"
  local first="$store/$prefix-0/_manifests/tags"
  for i in $(seq 1 $((tags - 1))); do
    tag="1.$((i / 100)).$((i % 100))"
    cp -r "$first/1.0.0" "$first/$tag"
  done
  for i in $(seq 1 $((repos - 1))); do
    cp -r "$store/$prefix-0" "$store/$prefix-$i"
  done
}
