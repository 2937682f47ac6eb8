# Builds tagsmith in release mode and prints the binary's path. Sourced by the scripts that run
# the binary; the path comes from cargo itself, so CARGO_TARGET_DIR, `build.target-dir` in a
# cargo config and `--target-dir` set by a wrapper are all honoured.
build_release_binary() {
  cargo build --release --locked --quiet --bin tagsmith >&2
  local dir
  dir=$(cargo metadata --no-deps --format-version 1 --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  if [ -z "$dir" ] || [ ! -x "$dir/release/tagsmith" ]; then
    echo "tagsmith: cannot find the release binary under '${dir:-?}/release'" >&2
    return 2
  fi
  printf '%s\n' "$dir/release/tagsmith"
}
