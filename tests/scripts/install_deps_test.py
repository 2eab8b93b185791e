#!/usr/bin/env python3
"""Specification of scripts/install-deps, run against stand-ins of dpkg-query, dpkg, apt-get,
apt-cache (and id, sudo) on PATH, over an apt folder of the test's own: nothing on the machine
is installed or changed. Usage: install_deps_test.py [PATH_TO_INSTALL_DEPS]"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

SCRIPT = Path(sys.argv.pop(1) if len(sys.argv) > 1 else
              Path(__file__).resolve().parents[2] / "scripts" / "install-deps")

# The machine's own deb822 sources, as Debian 12 ships them: the backports entry must come from
# the stanza that names bookworm, with its URIs, Components and Signed-By.
DEBIAN_SOURCES = textwrap.dedent("""\
    Types: deb
    # a comment that must not be copied
    URIs: file:/srv/debian
    Suites: bookworm bookworm-updates
    Components: main contrib
    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

    Types: deb
    URIs: file:/srv/debian-security
    Suites: bookworm-security
    Components: main
    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
    """)

# Stand-ins. State lives under $FAKE: installed/<pkg> holds a version; calls.log one line a call.
STANDINS = {
    "dpkg-query": r"""
        # dpkg-query -W -f=FORMAT PKG: the status and version of an installed package, else exit 1
        echo "dpkg-query $*" >> "$FAKE/calls.log"
        pkg=${!#}
        if [ -f "$FAKE/installed/$pkg" ]; then printf 'install ok installed %s' "$(cat "$FAKE/installed/$pkg")"
        else echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; fi
        """,
    "dpkg": r"""
        # only --compare-versions, a pure function: the machine's dpkg answers it
        [ "$1" = --compare-versions ] || { echo "dpkg stand-in: unexpected $*" >&2; exit 2; }
        exec /usr/bin/dpkg "$@"
        """,
    "apt-get": r"""
        echo "apt-get $*" >> "$FAKE/calls.log"
        case "$1" in
          update)
            [ -f "$FAKE/fail-update" ] && { echo "E: update failed" >&2; exit 100; }
            # backports is in the lists only when an entry for it existed at update time
            if grep -rqs bookworm-backports "$FAKE/etc/sources.list.d"; then touch "$FAKE/lists-backports"; fi
            exit 0 ;;
          install)
            shift; release=""; pkgs=()
            while [ $# -gt 0 ]; do
              case "$1" in -t) release=$2; shift 2 ;; -*) shift ;; *) pkgs+=("$1"); shift ;; esac
            done
            for p in "${pkgs[@]}"; do
              if [ -f "$FAKE/unavailable/${p%%/*}" ]; then echo "E: Unable to locate package ${p%%/*}" >&2; exit 100; fi
            done
            for p in "${pkgs[@]}"; do
              from=$release
              case "$p" in */*) from=${p#*/}; p=${p%%/*} ;; esac
              if [ "$from" = bookworm-backports ] && [ -f "$FAKE/backports/$p" ]; then cp "$FAKE/backports/$p" "$FAKE/installed/$p"
              else echo 1.0-1 > "$FAKE/installed/$p"; fi
            done ;;
          *) echo "apt-get stand-in: unexpected $*" >&2; exit 2 ;;
        esac
        """,
    "apt-cache": r"""
        echo "apt-cache $*" >> "$FAKE/calls.log"
        [ "$1" = madison ] || { echo "apt-cache stand-in: unexpected $*" >&2; exit 2; }
        p=$2
        if [ -f "$FAKE/lists-backports" ] && [ -f "$FAKE/backports/$p" ]; then
          echo " $p | $(cat "$FAKE/backports/$p") | file:/srv/debian bookworm-backports/main amd64 Packages"
        fi
        echo " $p | 1.0-1 | file:/srv/debian bookworm/main amd64 Packages"
        """,
    "id": r"""
        [ "$1" = -u ] && { cat "$FAKE/uid"; exit 0; }
        exec /usr/bin/id "$@"
        """,
    "sudo": r"""
        echo "sudo $*" >> "$FAKE/calls.log"
        exec "$@"
        """,
}

BACKPORTS = {"catch2": "3.4.0-1~bpo12+1", "meson": "1.5.1-1~bpo12+1"}


class InstallDeps(unittest.TestCase):
    def setUp(self):
        self.fake = Path(tempfile.mkdtemp(prefix="cxlkv-install-deps-"))
        self.addCleanup(shutil.rmtree, self.fake)
        bin_dir = self.fake / "bin"
        for d in ("bin", "installed", "unavailable", "backports", "etc/sources.list.d"):
            (self.fake / d).mkdir(parents=True)
        for name, body in STANDINS.items():
            path = bin_dir / name
            path.write_text("#!/usr/bin/env bash\nset -u\n" + textwrap.dedent(body))
            path.chmod(0o755)
        for pkg, version in BACKPORTS.items():
            (self.fake / "backports" / pkg).write_text(version + "\n")
        (self.fake / "etc/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
        (self.fake / "uid").write_text("0\n")

    @property
    def packages(self):
        out = self.run_script("--list")
        self.assertEqual(out.returncode, 0, out.stderr)
        return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]

    def run_script(self, *args):
        env = dict(os.environ, FAKE=str(self.fake), CXLKV_APT_ETC=str(self.fake / "etc"),
                   PATH=f"{self.fake / 'bin'}:{os.environ['PATH']}")
        return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)

    def calls(self, prefix):
        log = self.fake / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line for line in lines if line.startswith(prefix)]

    def installed_packages(self, with_version=None):
        for pkg in self.packages:
            version = (with_version or {}).get(pkg, BACKPORTS.get(pkg, "1.0-1"))
            (self.fake / "installed" / pkg).write_text(version + "\n")

    def installed_by_apt(self):
        pkgs = []
        for call in self.calls("apt-get install"):
            words = call.split()[2:]
            skip = False
            for w in words:
                if skip:
                    skip = False
                elif w == "-t":
                    skip = True
                elif not w.startswith("-"):
                    pkgs.append(w.split("/")[0])
        return pkgs

    def test_bare_machine_derives_backports_updates_once_and_installs_exactly_the_missing(self):
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        entry = (self.fake / "etc/sources.list.d/cxlkv-backports.sources").read_text()
        self.assertIn("Suites: bookworm-backports\n", entry)
        self.assertIn("URIs: file:/srv/debian\n", entry)
        self.assertIn("Components: main contrib\n", entry)
        self.assertIn("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg", entry)
        self.assertNotIn("security", entry)
        self.assertNotIn("#", entry)
        self.assertEqual(self.calls("apt-get update"), ["apt-get update -q"])
        self.assertEqual(sorted(self.installed_by_apt()), sorted(self.packages))
        # one transaction: the backported packages named with their release, the rest plain
        installs = self.calls("apt-get install")
        self.assertEqual(len(installs), 1)
        words = installs[0].split()
        self.assertEqual(sorted(w for w in words if "/" in w), sorted(f"{p}/bookworm-backports" for p in BACKPORTS))
        self.assertNotIn("-t", words)
        self.assertEqual((self.fake / "installed/catch2").read_text().strip(), BACKPORTS["catch2"])

    def test_some_missing_installs_only_those(self):
        self.installed_packages()
        for pkg in ("libnuma-dev", "shellcheck"):
            (self.fake / "installed" / pkg).unlink()
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(self.installed_by_apt()), ["libnuma-dev", "shellcheck"])
        self.assertEqual(len(self.calls("apt-get update")), 1)
        # no backports package was needed: no entry written
        self.assertFalse((self.fake / "etc/sources.list.d/cxlkv-backports.sources").exists())

    def test_backport_too_old_is_upgraded_from_backports(self):
        self.installed_packages({"meson": "1.0.1-5"})
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.installed_by_apt(), ["meson"])
        self.assertIn("meson/bookworm-backports", self.calls("apt-get install")[0].split())

    def test_everything_installed_makes_no_apt_call(self):
        self.installed_packages()
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls("apt"), [])
        self.assertEqual(self.calls("sudo"), [])
        self.assertIn("all", r.stdout)
        # and a second run of a bare install is the same: idempotent
        self.assertFalse((self.fake / "etc/sources.list.d/cxlkv-backports.sources").exists())

    def test_run_twice_from_bare_second_run_makes_no_apt_call(self):
        self.assertEqual(self.run_script().returncode, 0)
        (self.fake / "calls.log").unlink()
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls("apt"), [])

    def test_apt_install_failure_exits_nonzero_naming_the_package(self):
        (self.fake / "unavailable/libpmem2-dev").touch()
        r = self.run_script()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("libpmem2-dev", r.stderr)
        self.assertIn("apt-get install", r.stderr)

    def test_update_failure_exits_nonzero_naming_the_command(self):
        (self.fake / "fail-update").touch()
        r = self.run_script()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("apt-get update", r.stderr)
        self.assertEqual(self.calls("apt-get install"), [])

    def test_no_bookworm_source_exits_nonzero_saying_what_to_do(self):
        (self.fake / "etc/sources.list.d/debian.sources").unlink()
        r = self.run_script()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("bookworm-backports", r.stderr)
        self.assertEqual(self.calls("apt-get"), [])

    def test_one_line_sources_list_is_derived_too(self):
        (self.fake / "etc/sources.list.d/debian.sources").unlink()
        (self.fake / "etc/sources.list").write_text(
            "deb [signed-by=/k.gpg] file:/srv/debian bookworm main non-free\n")
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        entry = (self.fake / "etc/sources.list.d/cxlkv-backports.sources").read_text()
        self.assertIn("URIs: file:/srv/debian\n", entry)
        self.assertIn("Components: main non-free\n", entry)
        self.assertIn("Suites: bookworm-backports\n", entry)

    def test_backports_without_the_version_exits_nonzero_naming_package_and_entry(self):
        (self.fake / "backports/catch2").unlink()
        r = self.run_script()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("catch2", r.stderr)
        self.assertIn("cxlkv-backports.sources", r.stderr)

    def test_as_a_user_apt_runs_through_sudo(self):
        (self.fake / "uid").write_text("1000\n")
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        via_sudo = self.calls("sudo ")
        self.assertEqual(len([c for c in via_sudo if "apt-get" in c]), 2)  # update, install
        self.assertEqual(len([c for c in via_sudo if c.startswith("sudo tee")]), 1)  # the entry
        self.assertEqual(len(self.calls("apt-get")), 2)  # and none without sudo


if __name__ == "__main__":
    unittest.main(verbosity=2)
