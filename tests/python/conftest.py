"""Fixtures of the package's tests: a real cxlkv-poold ($CXLKV_POOLD) on a private shm region
and socket, ended with the test session; and a connected Client per test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import cxlkv

LAYOUT = "custom:name=pytest,layers=4,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk"
TENANT, TOKEN = "py", "py-token"


class Daemon:
    def __init__(self, tag: str, size: str = "128MiB", extra: tuple[str, ...] = (), layout: str = LAYOUT) -> None:
        self.name = f"cxlkv-pytest-{os.getpid()}-{tag}-{uuid.uuid4().hex[:6]}"
        self.socket = Path("/tmp") / f"{self.name}.sock"
        self.endpoint = f"unix:{self.socket}"
        cmd = [os.environ["CXLKV_POOLD"], "--backend", "shm", "--path", f"/{self.name}", "--size", size,
               "--layout", layout, "--slab-pages", "1", "--socket", str(self.socket), "--metrics-port", "0",
               "--tenant", f"{TENANT}:{TOKEN}", "--log-level", "warn", "--write-lease-ttl-ms", "2000",
               "--huge-pages", "off", *extra]  # the region stays the shm object named here
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._accepts():
            if self.process.poll() is not None:
                raise RuntimeError(f"cxlkv-poold exited with {self.process.returncode} during start-up: {cmd}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cxlkv-poold did not open {self.socket} within 10 s")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        # bound is not yet listening: wait for a connection the daemon accepts
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.socket.unlink(missing_ok=True)
        Path("/dev/shm", self.name).unlink(missing_ok=True)
        Path("/dev/shm", self.name + ".meta").unlink(missing_ok=True)  # its metadata region


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    d = Daemon("main")
    yield d
    d.stop()


@pytest.fixture
def client(daemon: Daemon, request: pytest.FixtureRequest) -> Iterator[cxlkv.Client]:
    # A model per test: a namespace of its own, so tests never see each other's pages.
    with cxlkv.Client(daemon.endpoint, TENANT, TOKEN, model=request.node.name) as c:
        yield c
