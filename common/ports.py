"""TCP ports a command is about to listen on: free, or held by whom; a free one for tests.

``promptus demo`` checks its two ports before it starts anything, so that a port already taken
is refused at once with the program that holds it, instead of after the daemon's generator has
loaded. The holder comes from Linux's ``/proc`` (the listening socket's inode, then the process
with that socket open): a process of another user, or another system, is "another program".
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_TABLES = ("net/tcp", "net/tcp6")
TCP_LISTEN = "0A"  # the `st` column of a listening socket in /proc/net/tcp
MAX_COMMAND_CHARS = 160  # of a holder's command line in a message


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` nobody listens on right now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now (as aiohttp binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a port, and the process that started it."""

    pid: int
    command: str
    parent_pid: int | None = None
    parent_command: str | None = None

    def describe(self) -> str:
        """``pid 12 (python -m promptus serve ...), started by pid 10 (...)``."""
        text = f"pid {self.pid} ({self.command})"
        if self.parent_pid is not None and self.parent_pid > 1 and self.parent_command:
            text += f", started by pid {self.parent_pid} ({self.parent_command})"
        return text


def port_holder(port: int, proc: Path = PROC) -> PortHolder | None:
    """The process listening on TCP ``port``, when this user may see it (else None)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port, proc)}
    if not sockets:
        return None
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        if _open_sockets(pid_dir) & sockets:
            pid = int(pid_dir.name)
            parent = _parent_pid(pid_dir)
            parent_command = _command(proc / str(parent)) if parent else None
            return PortHolder(pid, _command(pid_dir) or "?", parent, parent_command)
    return None


def _open_sockets(pid_dir: Path) -> set[str]:
    """What the file descriptors of a process point to (empty: another user's, or gone)."""
    try:
        fds = list((pid_dir / "fd").iterdir())
    except OSError:
        return set()
    links = set()
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
    return links


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in TCP_TABLES:
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _command(pid_dir: Path) -> str | None:
    try:
        argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    text = " ".join(arg.decode("utf-8", "replace") for arg in argv if arg)
    return text if len(text) <= MAX_COMMAND_CHARS else text[: MAX_COMMAND_CHARS - 3] + "..."


def _parent_pid(pid_dir: Path) -> int | None:
    try:
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ")" ends it
    fields = stat[stat.rfind(")") + 2 :].split()
    parent = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    return parent or None
