"""Single-instance locks: one portal per run folder, one node daemon per node name."""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO


class AlreadyRunning(Exception):
    def __init__(self, pid: str):
        super().__init__(pid)
        self.pid = pid


def hold_lock(path: Path) -> IO[str]:
    """Take an exclusive lock for the life of this process (keep the returned file open)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(pid) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
