# shellcheck shell=bash
# The apt steps every install-deps script of cxlkv shares (scripts/install-deps,
# emulation/qemu/install-deps): which packages are missing, the bookworm-backports entry derived
# from this machine's own apt sources (no mirror address is ever written here), one `apt-get
# update`, the installs, and a message on stderr naming the package and the command for every
# failure. Sourced, never run; callers set APT_WHO (the name in messages) first.
#
# Environment: CXLKV_APT_ETC, apt's configuration folder (default /etc/apt; the install-deps test
# points it at a folder of its own).

APT_ETC=${CXLKV_APT_ETC:-/etc/apt}
APT_BACKPORTS_ENTRY="$APT_ETC/sources.list.d/cxlkv-backports.sources"
APT_UPDATED=0
SUDO=""

apt_say() { echo "$APT_WHO: $*"; }
apt_die() { echo "$APT_WHO: $*" >&2; exit 1; }

# Any command that fails where no check of ours catches it still says what failed.
trap 'echo "$APT_WHO: line $LINENO: \`$BASH_COMMAND\` failed (exit $?)" >&2' ERR

# apt_need_root: sets SUDO when not root; call only when something must be installed.
apt_need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null ||
    apt_die "not root and no sudo: run as root, or install sudo, to install: $*"
  SUDO=sudo
  apt_say "not root: using sudo"
}

# apt_installed_version PKG: prints the installed version, or nothing (never fails).
apt_installed_version() {
  local out
  out=$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null) || return 0
  case "$out" in "install ok installed "*) echo "${out#install ok installed }" ;; esac
}

# apt_missing PKG[:MIN_VERSION]...: prints each package not installed, or older than its minimum.
apt_missing() {
  local entry pkg min have
  for entry in "$@"; do
    pkg=${entry%%:*} min=""
    [ "$pkg" != "$entry" ] && min=${entry#*:}
    have=$(apt_installed_version "$pkg")
    if [ -z "$have" ]; then echo "$pkg"
    elif [ -n "$min" ] && ! dpkg --compare-versions "$have" ge "$min"; then echo "$pkg"
    fi
  done
}

# apt_backports_enabled: true when some apt source already names bookworm-backports.
apt_backports_enabled() {
  local f
  for f in "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list "$APT_ETC"/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -qE '^[^#]*bookworm-backports' "$f" && return 0
  done
  return 1
}

# apt_derive_backports: prints a deb822 bookworm-backports entry made from the machine's own
# bookworm source (its URIs, Components and Signed-By), or fails with nothing printed.
apt_derive_backports() {
  local src="$APT_ETC/sources.list.d/debian.sources" list="$APT_ETC/sources.list" uri comps
  if [ -f "$src" ]; then
    # deb822: the first stanza whose Suites name bookworm, its Suites swapped, comments dropped.
    awk 'BEGIN { RS = "" }
         {
           n = split($0, line, "\n"); hit = 0
           for (i = 1; i <= n; i++)
             if (line[i] ~ /^Suites:/) { m = split(line[i], w, /[ \t]+/); for (j = 2; j <= m; j++) if (w[j] == "bookworm") hit = 1 }
           if (!hit) next
           for (i = 1; i <= n; i++) {
             if (line[i] ~ /^Suites:/) print "Suites: bookworm-backports"
             else if (line[i] !~ /^#/) print line[i]
           }
           exit
         }' "$src"
  elif [ -f "$list" ]; then
    # One-line form: deb [options] URI bookworm COMPONENTS...
    read -r uri comps < <(awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == "bookworm") { c = ""; for (j = i + 2; j <= NF; j++) c = c " " $j; print $i c; exit }
      }' "$list") || true
    [ -n "${uri:-}" ] || return 0
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: %s\n' "$uri" "$comps"
  fi
}

# apt_enable_backports: writes the derived entry once; a no-op when backports is already enabled.
apt_enable_backports() {
  apt_backports_enabled && return 0
  local entry
  entry=$(apt_derive_backports)
  [ -n "$entry" ] || apt_die "no bookworm source in $APT_ETC/sources.list.d/debian.sources or \
$APT_ETC/sources.list to derive bookworm-backports from; add a bookworm-backports entry by hand, then run again"
  apt_say "enabling bookworm-backports: $APT_BACKPORTS_ENTRY, derived from the machine's bookworm source:"
  printf '    %s\n' "${entry//$'\n'/$'\n'    }"
  printf '%s\n' "$entry" | $SUDO tee "$APT_BACKPORTS_ENTRY" >/dev/null ||
    apt_die "could not write $APT_BACKPORTS_ENTRY (entry above)"
  APT_UPDATED=0
}

# apt_update: `apt-get update` once per run.
apt_update() {
  [ "$APT_UPDATED" = 1 ] && return 0
  apt_say "refreshing the package lists: apt-get update"
  $SUDO apt-get update -q ||
    apt_die "\`apt-get update\` failed (output above); check the network and $APT_ETC/sources.list.d/, then run again"
  APT_UPDATED=1
}

# apt_backports_version PKG: the newest version bookworm-backports offers, or nothing.
apt_backports_version() {
  apt-cache madison "$1" 2>/dev/null | awk -F' *[|] *' '$3 ~ /bookworm-backports/ { print $2; exit }' || true
}

# apt_check_backports PKG:MIN...: after the update, fails naming the entry when backports does not
# offer a package at its minimum version (a stale or wrong entry shows up here, not as apt's error).
apt_check_backports() {
  local entry pkg min v
  for entry in "$@"; do
    pkg=${entry%%:*} min=${entry#*:}
    v=$(apt_backports_version "$pkg")
    if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$min"; then
      apt_die "bookworm-backports offers ${pkg} ${v:-in no version}, need >= ${min}. \
Entry: $APT_BACKPORTS_ENTRY (or the machine's own); check it, run \`apt-get update\`, then \`apt-cache madison ${pkg}\`"
    fi
  done
}

# apt_install [-t RELEASE] PKG[:MIN_VERSION][/RELEASE]...: installs the packages given in one
# transaction (PKG/RELEASE takes that package, and what it needs, from RELEASE: one resolver run
# sees every version, so a bookworm package that depends on an older version of a backported one
# cannot break the install), then checks each is there and new enough; a failure names the
# packages still missing and the command to retry.
apt_install() {
  local release=() entries=() pkgs=() still e pkg
  if [ "$1" = "-t" ]; then release=(-t "$2"); shift 2; fi
  for e in "$@"; do
    pkg=${e%%/*}
    entries+=("$pkg")
    pkgs+=("${pkg%%:*}${e#"$pkg"}")
  done
  local cmd=(apt-get install -y -q --no-install-recommends "${release[@]}" "${pkgs[@]}")
  apt_say "installing ${pkgs[*]}${release[*]:+ (from ${release[1]})}"
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive "${cmd[@]}"; then
    still=$(apt_missing "${entries[@]}" | tr '\n' ' ')
    apt_die "\`${cmd[*]}\` failed (apt's message above); not installed: ${still:-${pkgs[*]}}. Run that command by hand to see why."
  fi
  still=$(apt_missing "${entries[@]}" | tr '\n' ' ')
  [ -z "$still" ] || apt_die "after \`${cmd[*]}\`, still missing or too old: $still"
}
