"""Where gatord listens, and opening connections to it (spec section 2).

Default: abstract Unix sockets ``\\0streamline-annotate-parent`` (control) and
``\\0streamline-annotate`` (data). With TCP: 127.0.0.1 port 8082 (control) and 8083 (data).
The names can be changed (``prefix``; the control name is ``prefix + "-parent"``) so that tests
and benchmarks can run a private listener beside a real gatord.
"""

import socket
from typing import Optional, Tuple, Union

DEFAULT_PREFIX = "streamline-annotate"
DEFAULT_TCP_PORTS = (8082, 8083)
TCP_HOST = "127.0.0.1"

Address = Union[bytes, Tuple[str, int]]


class Endpoints:
    """The control and data addresses of one gatord (abstract UDS names or TCP ports)."""

    __slots__ = ("prefix", "tcp", "tcp_ports")

    def __init__(
        self, prefix: str = DEFAULT_PREFIX, tcp: bool = False, tcp_ports: Tuple[int, int] = DEFAULT_TCP_PORTS
    ) -> None:
        self.prefix = prefix
        self.tcp = tcp
        self.tcp_ports = tuple(tcp_ports)

    @property
    def control(self) -> Address:
        return (TCP_HOST, self.tcp_ports[0]) if self.tcp else b"\0" + self.prefix.encode() + b"-parent"

    @property
    def data(self) -> Address:
        return (TCP_HOST, self.tcp_ports[1]) if self.tcp else b"\0" + self.prefix.encode()

    def describe(self) -> str:
        if self.tcp:
            return f"tcp {TCP_HOST}:{self.tcp_ports[0]}/{self.tcp_ports[1]}"
        return f"unix abstract @{self.prefix}-parent / @{self.prefix}"

    def _connect(self, address: Address, timeout: float) -> socket.socket:
        family = socket.AF_INET if self.tcp else socket.AF_UNIX
        s = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.settimeout(timeout)
            s.connect(address)
            if self.tcp:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            s.close()
            raise
        return s

    def connect_control(self, timeout: float = 1.0) -> socket.socket:
        """The control connection, non-blocking: gatord writes 0x00 on it when a capture starts."""
        s = self._connect(self.control, timeout)
        s.setblocking(False)
        return s

    def connect_data(self, handshake: bytes, timeout: float = 2.0) -> socket.socket:
        """A data connection with ``handshake`` sent; sends on it time out after ``timeout`` s."""
        s = self._connect(self.data, timeout)
        try:
            s.sendall(handshake)
        except BaseException:
            s.close()
            raise
        return s


def poll_control(sock: socket.socket) -> Optional[bytes]:
    """Bytes gatord wrote on the control connection (b"" = it closed), None when nothing yet."""
    try:
        data = sock.recv(64)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
    return data
