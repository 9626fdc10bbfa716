"""Who is on the other end of a local connection: process and user (``SO_PEERCRED``, ``/proc/net/tcp``)."""

from __future__ import annotations

import socket
import struct


def peer_of(sock: socket.socket, tcp: bool) -> tuple[str, int | None]:
    """Who is on the other end: (``pid N`` or ``host:port``, their user id or None when unknown)."""
    if tcp:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}", tcp_peer_uid(sock)
    pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return f"pid {pid}", uid


def tcp_peer_uid(sock: socket.socket) -> int | None:
    """The owner of a local TCP peer's socket, from ``/proc/net/tcp``/``tcp6`` (its local end is our remote end)."""
    peer, ours = sock.getpeername(), sock.getsockname()
    family = "tcp6" if sock.family == socket.AF_INET6 else "tcp"

    def hexaddr(addr: tuple) -> str:
        packed = socket.inet_pton(sock.family, addr[0])
        words = [packed[i : i + 4][::-1].hex().upper() for i in range(0, len(packed), 4)]
        return "".join(words) + f":{addr[1]:04X}"

    want = (hexaddr(peer), hexaddr(ours))
    try:
        with open(f"/proc/net/{family}") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 7 and (fields[1], fields[2]) == want:
                    return int(fields[7])
    except (OSError, ValueError):
        pass
    return None
