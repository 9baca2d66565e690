"""A real server for the server tests: ``pets serve`` (uvicorn) in a subprocess on
127.0.0.1 and a free port, over a real holder home; nothing of pets is mocked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pets  # noqa: E402

PURPOSE = "labour-stats"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen
    args: list[str]
    keys: dict[str, str] = field(default_factory=dict)

    def holder(self) -> pets.Holder:
        return pets.Holder(self.home)

    def connect(self, analyst: str = "alice", purpose: str = PURPOSE, **kw) -> pets.RemoteSession:
        return pets.connect(self.url, api_key=self.keys[analyst], purpose=purpose, **kw)

    def headers(self, analyst: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[analyst]}"}


def start(home: Path, *extra: str) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "pets.cli", "serve", "--home", str(home), "--port", str(port),
            "--log-level", "warning", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"pets serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("pets serve did not become ready in 60 s")
        time.sleep(0.1)
    return Server(url, home, proc, args)


def stop(srv: Server, sig: int = signal.SIGTERM) -> None:
    if srv.proc.poll() is None:
        srv.proc.send_signal(sig)
        try:
            srv.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()
    if srv.proc.stderr:
        srv.proc.stderr.close()


def make_home(home: Path) -> dict[str, str]:
    h = pets.Holder(home)
    h.register("adult", pets.example_data(), pets.example_policy())
    h.grant("alice", dataset="adult", purpose=PURPOSE, epsilon=20.0)
    h.grant("bob", dataset="adult", purpose="other", epsilon=1.0)
    h.grant("carol", dataset="adult", purpose=PURPOSE, epsilon=0.1)   # small: refusals
    h.grant("burst", dataset="adult", purpose=PURPOSE, epsilon=1.0)   # the concurrency test
    return {a: h.issue_key(a) for a in ("alice", "bob", "carol", "burst")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("server") / "home"
    keys = make_home(home)
    srv = start(home, "--rate", "1000", "--burst", "1000", "--concurrency", "64")
    srv.keys = keys
    try:
        yield srv
    finally:
        stop(srv)
