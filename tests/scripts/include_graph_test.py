#!/usr/bin/env python3
"""The house's floors (docs/architecture.md), checked on the sources: which folder's headers each
folder includes. pool/ and client/ stand on wire/ and never include each other; baseline/ and
emulation/ include nothing of pool/; nothing reaches into a folder by a relative path, in an
#include or a meson include_directories(). Usage: include_graph_test.py SOURCE_ROOT"""

import os
import re
import sys
import unittest
from collections import defaultdict
from pathlib import Path

ROOT = Path(sys.argv.pop(1) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
FOLDERS = ["include", "cxl", "allocator", "wire", "cluster", "kernels", "client", "pool", "testkit", "baseline",
           "emulation"]
SOURCES = (".h", ".cc", ".cu", ".cuh", ".c")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(folder):
    for dirpath, _, files in os.walk(ROOT / folder):
        for f in files:
            if f.endswith(SOURCES):
                yield Path(dirpath) / f


def header_owners():
    """Header name as included -> the folders that hold a header of that name."""
    owners = defaultdict(set)
    for folder in FOLDERS:
        for path in sources(folder):
            if path.suffix in (".h", ".cuh"):
                rel = path.relative_to(ROOT / folder)
                owners[rel.as_posix() if folder == "include" else path.name].add(folder)
    return owners


def edges():
    owners = header_owners()
    found = defaultdict(set)  # (from, to) -> {file: include}
    for folder in FOLDERS:
        for path in sources(folder):
            for inc in INCLUDE.findall(path.read_text(errors="replace")):
                for owner in owners.get(inc, owners.get(os.path.basename(inc), ())):
                    if owner != folder:
                        found[(folder, owner)].add(f"{path.relative_to(ROOT)}: {inc}")
    return found


class IncludeGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edges = edges()

    def assert_no_edge(self, src, dst):
        self.assertEqual(sorted(self.edges.get((src, dst), ())), [], f"{src}/ includes {dst}/")

    def test_the_graph_was_read(self):
        self.assertIn(("pool", "wire"), self.edges)
        self.assertIn(("client", "wire"), self.edges)

    def test_pool_and_client_never_include_each_other(self):
        self.assert_no_edge("pool", "client")
        self.assert_no_edge("client", "pool")

    def test_baseline_and_emulation_include_no_pool_internals(self):
        self.assert_no_edge("baseline", "pool")
        self.assert_no_edge("emulation", "pool")

    def test_lower_floors_stand_on_nothing_above(self):
        for low, high in [("cxl", "allocator"), ("cxl", "client"), ("allocator", "client"), ("allocator", "pool"),
                          ("wire", "client"), ("wire", "pool"), ("include", "client")]:
            self.assert_no_edge(low, high)

    def test_cluster_stands_on_the_floors_below_only(self):
        # cluster/ is shared by the daemon and the client: it may know neither, nor the data path.
        for high in ["allocator", "kernels", "client", "pool", "testkit", "baseline", "emulation"]:
            self.assert_no_edge("cluster", high)

    def test_no_relative_include_paths(self):
        bad = [f"{p.relative_to(ROOT)}: {inc}" for folder in FOLDERS + ["tests"] for p in sources(folder)
               for inc in INCLUDE.findall(p.read_text(errors="replace")) if inc.startswith("../")]
        self.assertEqual(bad, [])
        meson_bad = [str(p.relative_to(ROOT)) for p in ROOT.rglob("meson.build")
                     if not p.relative_to(ROOT).parts[0].startswith("build")
                     and re.search(r"include_directories\([^)]*'\.\./", p.read_text())]
        self.assertEqual(meson_bad, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
