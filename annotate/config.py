"""The client's configuration: each option from the constructor, else the environment, else its default."""

import os
import sys
from typing import Any, Mapping, Optional

from annotate import wire
from annotate.transport import DEFAULT_PREFIX, DEFAULT_TCP_PORTS, Endpoints

DEFAULT_FLUSH_INTERVAL = 0.1  # s
DEFAULT_BUFFER_SIZE = 64 * 1024  # the C library's per-thread ring
MAX_BUFFER = 16 * 1024 * 1024  # per thread; beyond this (sender stuck) new messages are dropped

OPTIONS = {
    "file": None,
    "protocol": None,
    "tcp": None,
    "flush_interval": None,
    "address_prefix": None,
    "tcp_ports": None,
    "gatord": None,
    "retry_interval": 1.0,
    "buffer_size": DEFAULT_BUFFER_SIZE,
    "dont_mangle_keys": False,
    "send_timeout": 2.0,
}


def warn(msg: str) -> None:
    """One diagnostic line on stderr; never raises."""
    try:
        print("annotate: " + msg, file=sys.stderr, flush=True)
    except Exception:  # stderr closed: nothing else to do
        pass


def env_flag(name: str, env: Mapping[str, str]) -> Optional[bool]:
    v = env.get(name)
    return None if v is None or v == "" else v.strip().lower() not in ("0", "no", "false", "off")


class Settings:
    """The options in effect; raises ValueError for an unsupported protocol or a malformed number."""

    __slots__ = (
        "file",
        "protocol",
        "endpoints",
        "flush_interval",
        "gatord",
        "retry_interval",
        "wake_at",
        "dont_mangle_keys",
        "send_timeout",
    )

    def __init__(self, o: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> None:
        self.file = o["file"] if o["file"] is not None else (env.get("STREAMLINE_ANNOTATE_FILE") or None)
        protocol = o["protocol"]
        if protocol is None:
            protocol = int(env.get("STREAMLINE_ANNOTATE_PROTOCOL") or wire.DEFAULT_PROTOCOL)
        if protocol not in wire.PROTOCOLS:
            raise ValueError(f"annotation protocol {protocol} is not supported (use 4 or 5)")
        self.protocol = protocol
        tcp = o["tcp"] if o["tcp"] is not None else bool(env_flag("STREAMLINE_ANNOTATE_TCP", env))
        if o["flush_interval"] is not None:
            interval = float(o["flush_interval"])
        else:
            interval = float(env.get("STREAMLINE_ANNOTATE_FLUSH_MS") or DEFAULT_FLUSH_INTERVAL * 1000) / 1000
        self.flush_interval = max(interval, 0.0)
        self.gatord = (
            o["gatord"] if o["gatord"] is not None else env_flag("STREAMLINE_ANNOTATE_GATORD", env) is not False
        )
        prefix = o["address_prefix"] or env.get("STREAMLINE_ANNOTATE_SOCKET_PREFIX") or DEFAULT_PREFIX
        self.endpoints = Endpoints(prefix, tcp, tuple(o["tcp_ports"] or DEFAULT_TCP_PORTS))
        self.retry_interval = float(o["retry_interval"])
        self.wake_at = int(o["buffer_size"]) * 3 // 4
        self.dont_mangle_keys = bool(o["dont_mangle_keys"])
        self.send_timeout = float(o["send_timeout"])
