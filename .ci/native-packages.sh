#!/usr/bin/env bash
# Installs (idempotently) the Debian packages AlexNet.Cuda needs on a machine without a GPU:
#   - PoCL (OpenCL on the CPU) and CLBlast: the backend the tests run kernels and GEMMs on;
#   - OpenBLAS and oneDNN (Debian main): the GEMMs of an OpenCL device whose buffers live in host memory
#     (PoCL): oneDNN's SGEMM by default, OpenBLAS where it is missing or asked for;
#   - NVRTC 11.8 and libcuda1 from Debian non-free: NVRTC compiles every kernel for sm_80/sm_90 in the
#     tests, and libcuda1 lets the tests look up every CUDA driver entry point (cuInit then reports
#     CUDA_ERROR_NO_DEVICE, which is the "no CUDA device" path);
#   - cuBLAS 11 (optional, --with-cublas): lets the tests look up every cuBLAS entry point;
#   - numpy for Debian's python3 (optional, --with-numpy): lets a test read a full-size weight file
#     that numpy's own np.save wrote.
# Usage: native-packages.sh [--check] [--with-cublas] [--with-numpy]
#   --check   only report what is missing: prints the apt-get line and exits 1 when something is.
#
# The system's apt sources are never edited: apt is pointed, for these calls only, at a private copy of
# the machine's own Debian entries (same mirrors, same suites, same Signed-By and other options) with the
# contrib and non-free components added. Proxy settings live in apt.conf and apply unchanged.
# Sourcing this file (as .ci/test-native-sources.sh does) defines the functions without running anything.
set -euo pipefail

# Writes the private sources: one-line entries (from sources.list and *.list) to $3, deb822 stanzas
# (from *.sources) to $4, each format kept as written so options need no translation. Only Debian
# entries are taken: type deb, a suite named after a Debian release or alias (or the machine's own
# codename $1, for releases newer than this list). Each keeps its components and gains contrib and
# non-free, and non-free-firmware on bookworm and newer (the component that release split off).
# Disabled stanzas (Enabled: no) and comments are skipped. Returns 1 when no Debian entry was found.
# Usage: derive_debian_sources CODENAME LIST_OUT SOURCES_OUT FILE...
derive_debian_sources() {
  local codename="$1" list_out="$2" sources_out="$3"
  shift 3
  : > "$list_out"
  : > "$sources_out"
  [ $# -gt 0 ] || return 1
  awk -v codename="$codename" -v list_out="$list_out" -v sources_out="$sources_out" '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
    # The release a suite belongs to: "bookworm-security" and "buster/updates" -> bookworm, buster.
    function release(suite,   r) { r = suite; sub(/[-\/].*$/, "", r); return r }
    function is_debian(suite,   r) {
      if (suite ~ /\/$/) return 0  # a flat repository, not an archive with components
      r = release(suite)
      return r == codename || index(" " releases " ", " " r " ") > 0
    }
    # Releases before bookworm have no non-free-firmware component; every later one (and the aliases
    # that name bookworm or later now) has it.
    function before_bookworm(suite) { return index(" " older " ", " " release(suite) " ") > 0 }
    function components(have, suite,   n, parts, i, out, seen, extra) {
      n = split(have, parts, /[ \t]+/)
      out = ""
      for (i = 1; i <= n; i++) if (parts[i] != "" && !(parts[i] in seen)) { seen[parts[i]] = 1; out = out " " parts[i] }
      extra = before_bookworm(suite) ? "contrib non-free" : "contrib non-free non-free-firmware"
      n = split(extra, parts, " ")
      for (i = 1; i <= n; i++) if (!(parts[i] in seen)) { seen[parts[i]] = 1; out = out " " parts[i] }
      return trim(out)
    }

    # One-line form: deb [options] uri suite component...
    function one_line(line,   options, rest, i, n, f, comps, k) {
      sub(/#.*/, "", line)
      line = trim(line)
      if (line !~ /^deb[ \t]/) return
      rest = trim(substr(line, 4))
      options = ""
      if (substr(rest, 1, 1) == "[") {
        i = index(rest, "]")
        if (i == 0) return
        options = substr(rest, 1, i) " "
        rest = trim(substr(rest, i + 1))
      }
      n = split(rest, f, /[ \t]+/)
      if (n < 3 || !is_debian(f[2])) return
      comps = ""
      for (k = 3; k <= n; k++) comps = comps " " f[k]
      print "deb " options f[1] " " f[2] " " components(comps, f[2]) > list_out
      found = 1
    }

    # deb822 form: stanzas of "Field: value" lines, continuation lines start with a blank.
    function stanza(   n, t, i, is_deb, s, old_suites, new_suites, k, f, extra_fields) {
      if (nfields == 0) return
      if (tolower(trim(value["enabled"])) == "no") { reset(); return }
      n = split(value["types"], t, /[ \t]+/)
      is_deb = 0
      for (i = 1; i <= n; i++) if (t[i] == "deb") is_deb = 1
      old_suites = ""; new_suites = ""
      if (is_deb) {
        n = split(value["suites"], s, /[ \t\n]+/)
        for (i = 1; i <= n; i++) {
          if (s[i] == "" || !is_debian(s[i])) continue
          if (before_bookworm(s[i])) old_suites = old_suites " " s[i]; else new_suites = new_suites " " s[i]
        }
      }
      extra_fields = ""
      for (k = 1; k <= nfields; k++) {
        f = order[k]
        if (f == "types" || f == "uris" || f == "suites" || f == "components" || f == "enabled") continue
        extra_fields = extra_fields name[f] ":" raw[f] "\n"
      }
      if (old_suites != "") emit(trim(old_suites), extra_fields)
      if (new_suites != "") emit(trim(new_suites), extra_fields)
      reset()
    }
    function emit(suites, extra_fields,   first) {
      split(suites, first, " ")
      printf "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n%s\n", trim(value["uris"]), suites, components(value["components"], first[1]), extra_fields > sources_out
      found = 1
    }
    function reset(   f) { for (f in value) delete value[f]; for (f in raw) delete raw[f]; for (f in name) delete name[f]; nfields = 0; current = "" }

    BEGIN {
      older = "buzz rex bo hamm slink potato woody sarge etch lenny squeeze wheezy jessie stretch buster bullseye oldoldstable"
      releases = older " bookworm trixie forky duke sid experimental oldstable stable testing unstable"
      found = 0; nfields = 0
    }
    FNR == 1 { if (nfields > 0) stanza(); deb822 = (FILENAME ~ /\.sources$/) }
    !deb822 { one_line($0); next }
    /^#/ { next }
    /^[ \t]*$/ { stanza(); next }
    /^[ \t]/ { if (current != "") { value[current] = value[current] " " trim($0); raw[current] = raw[current] "\n" $0 } next }
    {
      i = index($0, ":")
      if (i == 0) next
      current = tolower(trim(substr($0, 1, i - 1)))
      if (!(current in value)) order[++nfields] = current
      name[current] = trim(substr($0, 1, i - 1))
      raw[current] = substr($0, i + 1)
      value[current] = trim(substr($0, i + 1))
    }
    END { if (nfields > 0) stanza(); exit found ? 0 : 1 }
  ' "$@"
}

main() {
  required=(ocl-icd-libopencl1 pocl-opencl-icd clinfo libclblast1 libopenblas0-pthread libdnnl2 libnvrtc11.2 libnvrtc-builtins11.8 libcuda1)
  check_only=0
  for arg in "$@"; do
    case "$arg" in
      --check) check_only=1 ;;
      --with-cublas) required+=(libcublas11) ;;
      --with-numpy) required+=(python3-numpy) ;;
      *) echo "native-packages.sh: unknown option '$arg'" >&2; exit 2 ;;
    esac
  done

  missing=()
  for p in "${required[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && exit 0

  # Debian's NVRTC, libcuda1 and cuBLAS live in contrib/non-free. Rather than edit the system's apt
  # sources, point apt at a private copy of them with those components added, for these calls only.
  local state_dir="${XDG_CACHE_HOME:-$HOME/.cache}/alexnet-cuda/apt"
  local list="$state_dir/sources.list" parts="$state_dir/sources.list.d"
  local apt_opts=(-o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=$parts")
  local install_line="apt-get ${apt_opts[*]} install -y --no-install-recommends ${missing[*]}"

  if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
    echo "missing native packages: ${missing[*]}" >&2
    echo "install them as root with: sudo bash $(realpath "$0")" >&2
    echo "(it runs: apt-get update and $install_line, with contrib non-free added to this machine's Debian sources in $state_dir)" >&2
    exit 1
  fi

  write_private_sources "$list" "$parts/debian-nonfree.sources"
  echo "installing native packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get "${apt_opts[@]}" update -qq >&2
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Writes the private sources from the machine's configured ones (rewritten each time, so running again
# gives the same files); deb.debian.org for this release only when no Debian source is configured.
write_private_sources() {
  local list="$1" sources="$2"
  mkdir -p "$(dirname "$list")" "$(dirname "$sources")"
  rm -f "$(dirname "$list")/debian-nonfree.sources" # the single file earlier versions of this script wrote
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  local configured=()
  [ -f /etc/apt/sources.list ] && configured+=(/etc/apt/sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && configured+=("$f")
  done
  if derive_debian_sources "$codename" "$list" "$sources" "${configured[@]}"; then
    return 0
  fi
  echo "no Debian source configured in /etc/apt: using deb.debian.org for $codename" >&2
  cat > "$sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $codename $codename-updates
Components: main contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
