#!/usr/bin/env bash
# Checks a fleetdeck .deb without installing it: its control fields, that it
# holds every file the package promises, and, unpacked into a temporary
# directory, that the binary runs and names its commit, the bash completion
# parses and the man pages render without a groff warning (when groff is
# installed). Exits non-zero with a sentence on the first problem.
#
# Usage: packaging/check-deb.sh target/debian/fleetdeck_<version>_<arch>.deb
set -euo pipefail

deb="${1:?usage: packaging/check-deb.sh FILE.deb}"
fail() {
  echo "check-deb: $*" >&2
  exit 1
}
[ -f "$deb" ] || fail "$deb is not a file"

info="$(dpkg-deb --info "$deb")"
grep -q '^ Package: fleetdeck$' <<<"$info" || fail "the package is not named fleetdeck"
grep -q '^ Depends: .*systemd-sysusers' <<<"$info" || fail "Depends does not name systemd-sysusers"
for script in postinst prerm postrm; do
  grep -q " $script " <<<"$info" || fail "no $script maintainer script"
done

contents="$(dpkg-deb --contents "$deb")"
for path in \
  ./usr/bin/fleetdeck \
  ./usr/lib/systemd/system/fleetdeck-node.service \
  ./usr/lib/sysusers.d/fleetdeck.conf \
  ./usr/lib/tmpfiles.d/fleetdeck-node.conf \
  ./usr/share/bash-completion/completions/fleetdeck \
  ./usr/share/zsh/vendor-completions/_fleetdeck \
  ./usr/share/fish/vendor_completions.d/fleetdeck.fish \
  ./usr/share/man/man1/fleetdeck.1.gz \
  ./usr/share/man/man1/fleetdeck-node-run.1.gz \
  ./usr/share/doc/fleetdeck/copyright; do
  grep -q " $path\$" <<<"$contents" || fail "$path is missing from the package"
done

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
dpkg-deb --extract "$deb" "$root"

version="$("$root/usr/bin/fleetdeck" --version)"
[[ "$version" =~ ^fleetdeck\ [0-9.]+\ \(([0-9a-f]{12}(-dirty)?|unknown)\)$ ]] ||
  fail "--version does not name a commit: $version"
grep -q 'ExecStart=/usr/bin/fleetdeck ' "$root/usr/lib/systemd/system/fleetdeck-node.service" ||
  fail "the unit does not run /usr/bin/fleetdeck"
bash -n "$root/usr/share/bash-completion/completions/fleetdeck" ||
  fail "the bash completion does not parse"

pages=("$root"/usr/share/man/man1/*.1.gz)
if command -v groff >/dev/null; then
  for page in "${pages[@]}"; do
    warnings="$(zcat "$page" | groff -man -Tutf8 -ww -z 2>&1)" ||
      fail "groff failed on $(basename "$page")"
    [ -z "$warnings" ] || fail "groff warns on $(basename "$page"): $warnings"
  done
else
  echo "check-deb: groff is not installed; man pages not rendered" >&2
fi

echo "check-deb: ok: $version, ${#pages[@]} man pages, $(du -h "$deb" | cut -f1) package"
