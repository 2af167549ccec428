"""The daemon the tests talk to: the one named by ``SPREAD_TEST_DAEMON`` (``"PORT"`` or
``"PORT@HOST"``), else one started here from the binary ``SPREAD_DAEMON_BIN`` on a free
loopback port (the first free one from ``SPREAD_TEST_PORT``, default 5290)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from typing import Optional

DAEMON_VAR = "SPREAD_TEST_DAEMON"
BINARY_VAR = "SPREAD_DAEMON_BIN"
PORT_VAR = "SPREAD_TEST_PORT"
#: Where daemons put their local sockets (default /tmp), shared with the library.
SOCKET_DIR_VAR = "SPREAD_SOCKET_DIR"
DEFAULT_FIRST_PORT = 5290
PORTS_TRIED = 40
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0


def _port_is_free(port: int) -> bool:
    """The daemon takes TCP and UDP ``port`` and UDP ``port + 1`` on 127.0.0.1."""
    wanted = [(socket.SOCK_STREAM, port), (socket.SOCK_DGRAM, port), (socket.SOCK_DGRAM, port + 1)]
    for kind, number in wanted:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", number))
            except OSError:
                return False
    return True


def _free_port() -> int:
    first = int(os.environ.get(PORT_VAR, DEFAULT_FIRST_PORT))
    for port in range(first, first + PORTS_TRIED, 2):
        if _port_is_free(port):
            return port
    raise RuntimeError(f"no free port pair in {first}..{first + PORTS_TRIED} for a test daemon")


class Daemon:
    """A daemon address, and the process when this module started it."""

    def __init__(self) -> None:
        self.address: str = ""
        self._process: Optional[subprocess.Popen] = None
        self._dir: Optional[str] = None
        self._port = 0

    def start(self, connect_probe) -> None:
        """Finds or starts the daemon; ``connect_probe(address)`` raises until it serves."""
        given = os.environ.get(DAEMON_VAR)
        if given:
            self.address = given
            return
        binary = os.environ.get(BINARY_VAR)
        if not binary:
            raise RuntimeError(
                f"the Spread tests need a daemon: set {DAEMON_VAR} to a running one "
                f"(e.g. 4803 or 4803@127.0.0.1) or {BINARY_VAR} to a daemon binary to start"
            )
        port = self._port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="spread-pytest-")
        conf = os.path.join(self._dir, "spread.conf")
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        with open(conf, "w") as f:
            f.write(
                f"Spread_Segment 127.255.255.255:{port} {{ localhost 127.0.0.1 {{ 127.0.0.1 }} }}\n"
                f"RuntimeDir = {self._dir}\nDaemonUser = {user}\nDaemonGroup = {group}\n"
            )
        log = open(os.path.join(self._dir, "daemon.log"), "w")
        self._process = subprocess.Popen(
            [binary, "-n", "localhost", "-c", conf], cwd=self._dir, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        # TCP: works whichever directory the daemon puts its local socket in.
        self.address = f"{port}@127.0.0.1"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the test daemon exited ({self._process.returncode}): {self.log()}")
            try:
                connect_probe(self.address)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the test daemon did not serve within {STARTUP_SECONDS} s: {self.log()}")
                time.sleep(0.25)

    def log(self) -> str:
        if not self._dir:
            return ""
        with open(os.path.join(self._dir, "daemon.log"), errors="replace") as f:
            return f.read()[-2000:]

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
            # A daemon stopped by a signal may leave its local socket behind.
            socket_path = os.path.join(os.environ.get(SOCKET_DIR_VAR) or "/tmp", str(self._port))
            if os.path.exists(socket_path) and stat.S_ISSOCK(os.stat(socket_path).st_mode):
                os.unlink(socket_path)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
