#!/usr/bin/env bash
# Builds the Debian package: target/debian/fleetdeck_<version>-1_<arch>.deb.
#
# The binary is built once (the `device` profile by default: built for
# size, no debug info; FLEETDECK_DEB_PROFILE=release for the release
# profile), then that binary writes the shell completions and man pages the
# package ships, then `cargo deb --no-build` packs them with the systemd
# unit, the sysusers and tmpfiles entries (packaging/) as `[package.metadata.deb]`
# in Cargo.toml lists them.
#
# Needs cargo-deb: cargo install --locked cargo-deb
# Honours CARGO_TARGET_DIR. Progress goes to stderr; stdout is only the
# path of the .deb, for scripts: deb="$(packaging/build-deb.sh)".
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${FLEETDECK_DEB_PROFILE:-device}"

if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb: cargo-deb is not installed; run: cargo install --locked cargo-deb" >&2
  exit 1
fi

target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
if [ -z "$target_dir" ]; then
  echo "build-deb: could not read the target directory from cargo metadata" >&2
  exit 1
fi
out="$target_dir/$profile"
bin="$out/fleetdeck"

echo "== cargo build --profile $profile (into $out)" >&2
cargo build --profile "$profile" --locked -p fleetdeck --bin fleetdeck

echo "== completions and man pages from $bin" >&2
"$bin" --version >&2
mkdir -p "$out/completions"
"$bin" completions bash >"$out/completions/fleetdeck.bash"
"$bin" completions zsh >"$out/completions/_fleetdeck"
"$bin" completions fish >"$out/completions/fleetdeck.fish"
rm -rf "$out/man"
"$bin" man --dir "$out/man" >&2
# Compressed as Debian policy asks (cargo-deb leaves built files as they are).
gzip -9 -n -f "$out"/man/*.1

echo "== cargo deb --no-build --profile $profile" >&2
cargo deb --no-build --locked --profile "$profile"
