#!/usr/bin/env bash
# Checks how native-packages.sh derives its private apt sources from a machine's own: fixture sources
# in a temporary folder (one-line and deb822, a custom mirror, a caching-proxy URI, security suites,
# options and an inline key, a release before bookworm, disabled and third-party entries), compared
# line by line with the expected private files. Run: bash .ci/test-native-sources.sh
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
# shellcheck source=native-packages.sh
source "$here/native-packages.sh" # defines the functions only
set +e # each check reports its own failure

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passes=0 failures=0
pass() { echo "ok: $1"; passes=$((passes + 1)); }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() { # name expected-file actual-file
  if diff -u "$2" "$3" > "$tmp/diff"; then pass "$1"; else fail "$1"; cat "$tmp/diff"; fi
}

mkdir -p "$tmp/etc"
cat > "$tmp/etc/sources.list" <<'EOF'
# a custom mirror with options
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.org/debian bookworm main # trailing comment
deb-src http://mirror.example.org/debian bookworm main
#deb http://mirror.example.org/debian bookworm-backports main
deb http://security.debian.org/debian-security bookworm-security main contrib
deb http://apt-cacher.internal:3142/deb.debian.org/debian bookworm-updates main
	deb   http://archive.debian.org/debian   buster   main
deb http://archive.debian.org/debian-security buster/updates main
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb http://mirror.example.org/flat ./
EOF
cat > "$tmp/etc/debian.sources" <<'EOF'
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: https://mirror.example.org/debian-security
Suites: bookworm-security
Components: main non-free-firmware
Architectures: amd64 arm64
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----

types: deb
uris: http://deb.debian.org/debian
suites: bullseye bookworm-backports
components: main contrib
enabled: yes

Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Enabled: no

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
EOF
cat > "$tmp/etc/nodesource.sources" <<'EOF'
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/nodesource.gpg
EOF
cat > "$tmp/etc/forky.list" <<'EOF'
deb http://deb.debian.org/debian forky main
deb http://deb.debian.org/debian zebra-updates main
EOF

cat > "$tmp/expected.list" <<'EOF'
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.org/debian bookworm main contrib non-free non-free-firmware
deb http://security.debian.org/debian-security bookworm-security main contrib non-free non-free-firmware
deb http://apt-cacher.internal:3142/deb.debian.org/debian bookworm-updates main contrib non-free non-free-firmware
deb http://archive.debian.org/debian buster main contrib non-free
deb http://archive.debian.org/debian-security buster/updates main contrib non-free
deb http://deb.debian.org/debian forky main contrib non-free non-free-firmware
deb http://deb.debian.org/debian zebra-updates main contrib non-free non-free-firmware
EOF
cat > "$tmp/expected.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://mirror.example.org/debian-security
Suites: bookworm-security
Components: main non-free-firmware contrib non-free
Architectures: amd64 arm64
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main contrib non-free

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main contrib non-free non-free-firmware

EOF

# The machine's own codename ("zebra") counts as Debian even when this script predates it.
derive_debian_sources zebra "$tmp/out.list" "$tmp/out.sources" \
  "$tmp/etc/sources.list" "$tmp/etc/forky.list" "$tmp/etc/debian.sources" "$tmp/etc/nodesource.sources"
rc=$?
if [ "$rc" = 0 ]; then pass "Debian entries found: status 0"; else fail "status $rc with Debian entries"; fi
check "one-line entries keep mirror, proxy URI, suite and options, and gain the components" "$tmp/expected.list" "$tmp/out.list"
check "deb822 stanzas keep URIs, suites, Signed-By (inline key too) and Architectures" "$tmp/expected.sources" "$tmp/out.sources"

# Running again from the same sources gives the same files.
derive_debian_sources zebra "$tmp/again.list" "$tmp/again.sources" \
  "$tmp/etc/sources.list" "$tmp/etc/forky.list" "$tmp/etc/debian.sources" "$tmp/etc/nodesource.sources"
check "a second run writes the same one-line file" "$tmp/out.list" "$tmp/again.list"
check "a second run writes the same deb822 file" "$tmp/out.sources" "$tmp/again.sources"

# Only third-party sources: nothing derived, status 1 (the caller then falls back to deb.debian.org).
: > "$tmp/empty"
echo "stale" > "$tmp/none.list"; echo "stale" > "$tmp/none.sources"
if derive_debian_sources bookworm "$tmp/none.list" "$tmp/none.sources" "$tmp/etc/nodesource.sources"; then
  fail "status 0 without any Debian entry"
else
  pass "no Debian entry: status 1"
fi
check "nothing derived: the one-line file is emptied" "$tmp/empty" "$tmp/none.list"
check "nothing derived: the deb822 file is emptied" "$tmp/empty" "$tmp/none.sources"

echo "native sources: $passes passed, $failures failed"
[ "$failures" = 0 ]
