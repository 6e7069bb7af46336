"""Fixtures: the real alcove-server binary on 127.0.0.1, in a temporary
directory, started per test and stopped after it."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def binary(name: str, env: str) -> str:
    """A workspace binary: $env if set, else target/debug or target/release."""
    explicit = os.environ.get(env)
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / name
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"no {name} binary: run `cargo build --bins` or set {env}")


def _server_binary() -> str:
    return binary("alcove-server", "ALCOVE_SERVER_BIN")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """A running relay; `stop()` and `start()` keep its port and data."""

    def __init__(self, data_dir: Path):
        self.port = _free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [_server_binary(), "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alcove-server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("alcove-server did not start listening within 20 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def relay(tmp_path):
    r = Relay(tmp_path / "relay")
    r.start()
    yield r
    r.stop()
