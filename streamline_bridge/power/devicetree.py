"""Reading the flattened device tree as the kernel exposes it: the node of an i2c device, its properties.

The tree is under ``/sys/firmware/devicetree/base`` (also ``/proc/device-tree``); each node is a
folder, each property a file of raw bytes (integers are big-endian 32-bit cells, strings are
NUL-terminated). The node of i2c device ``<bus>-<addr>`` is found, most direct first, through
the device's ``of_node`` link, the ``OF_FULLNAME`` of its ``uevent``, or by searching the tree for a
node with the driver's ``compatible`` string and ``reg`` = the address, on the bus that
``/aliases/i2c<bus>`` names when several buses have one.
"""

from __future__ import annotations

import os

from streamline_bridge.power.source import Roots


class TreeUnreadable(Exception):
    """The device tree, or the device's node in it, cannot be read; ``str(exc)`` says why."""


def tree_base(roots: Roots) -> str:
    """The device tree folder under ``roots`` (``sys/firmware/devicetree/base``, else ``proc/device-tree``;
    the machine's own /proc is not looked at for a copy of /sys)."""
    places = [roots.sys_path("firmware", "devicetree", "base")]
    if roots.sys == Roots.sys or roots.proc != Roots.proc:
        places.append(roots.proc_path("device-tree"))
    for base in places:
        if os.path.isdir(base):
            return base
    raise TreeUnreadable(f"no device tree at {' or '.join(places)}")


def read_property(node: str, name: str) -> bytes | None:
    """The raw bytes of property ``name`` of ``node``; None when the node has no such property.

    :class:`TreeUnreadable` when it exists but cannot be read.
    """
    path = os.path.join(node, name)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TreeUnreadable(f"{path}: {exc.strerror or exc}") from None


def read_u32(node: str, name: str) -> int | None:
    """The first big-endian 32-bit cell of property ``name`` (None: no such property)."""
    raw = read_property(node, name)
    if raw is None:
        return None
    if len(raw) < 4:
        raise TreeUnreadable(f"{os.path.join(node, name)}: {len(raw)} bytes, not a 32-bit cell")
    return int.from_bytes(raw[:4], "big")


def _strings(raw: bytes | None) -> list[str]:
    return [s.decode("utf-8", "replace") for s in (raw or b"").split(b"\0") if s]


def _nodes_with(base: str, compatible: str, reg: int) -> list[str]:
    found = []
    for folder, dirs, _ in os.walk(base):
        dirs.sort()
        try:
            if compatible in _strings(read_property(folder, "compatible")) and read_u32(folder, "reg") == reg:
                found.append(folder)
        except TreeUnreadable:
            continue
    return found


def i2c_node(roots: Roots, device_dir: str, device: str, compatible: str) -> str:
    """The node of i2c device ``device`` (``1-0040``) bound to a driver for ``compatible``.

    :class:`TreeUnreadable` when there is no tree, no such node, or several that the bus does not
    tell apart.
    """
    link = os.path.join(device_dir, "of_node")
    if os.path.isdir(link):
        return os.path.realpath(link)
    base = tree_base(roots)
    try:
        with open(os.path.join(device_dir, "uevent"), encoding="utf-8", errors="replace") as f:
            full = next((line.split("=", 1)[1].strip() for line in f if line.startswith("OF_FULLNAME=")), None)
    except OSError:
        full = None
    if full and os.path.isdir(os.path.join(base, full.lstrip("/"))):
        return os.path.join(base, full.lstrip("/"))
    bus, _, addr = device.partition("-")
    try:
        reg = int(addr, 16)
    except ValueError:
        raise TreeUnreadable(f"{device}: not an i2c device name (<bus>-<addr>)") from None
    found = _nodes_with(base, compatible, reg)
    if len(found) > 1:
        alias = _strings(read_property(os.path.join(base, "aliases"), f"i2c{bus}"))
        if alias:
            found = [n for n in found if os.path.dirname(n) == os.path.join(base, alias[0].lstrip("/"))]
    if len(found) == 1:
        return found[0]
    what = "no" if not found else f"{len(found)}"
    raise TreeUnreadable(
        f"{what} {compatible} node with reg {reg:#x} in {base}" + (" that the i2c aliases tell apart" if found else "")
    )
