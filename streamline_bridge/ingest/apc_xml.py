"""The XML files of a capture folder: ``captured.xml``, ``events.xml`` and ``counters.xml`` (spec §7)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import read_regular
from streamline_bridge.ingest.units import mw_per_unit


@dataclass
class EventInfo:
    """What ``events.xml`` says about one counter: how to scale and label its values."""

    counter: str
    title: str = ""
    name: str = ""
    units: str = ""
    multiplier: float = 1.0
    cls: str = ""  # delta, incident, absolute, activity
    display: str = ""
    description: str = ""
    category: str = ""

    @property
    def is_power(self) -> bool:
        """True for power counters: units W/mW/µW, or title "Power" (hwmon power is in W)."""
        return mw_per_unit(self.units) is not None or (not self.units.strip() and self.title.strip().lower() == "power")

    @property
    def to_mw(self) -> float:
        """Factor from a raw value to mW (``multiplier`` × unit scale); only for power counters."""
        return self.multiplier * (mw_per_unit(self.units) or 1000.0)


@dataclass
class CapturedXml:
    """``captured.xml``: protocol, target description and the counter key map."""

    protocol: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    target: dict[str, str] = field(default_factory=dict)
    counters: dict[int, dict[str, str]] = field(default_factory=dict)  # key -> <counter> attributes
    problems: list[str] = field(default_factory=list)  # entries that could not be used

    @property
    def keys(self) -> dict[int, str]:
        """``{key: counter type}`` as used by BLOCK_COUNTER/COUNTER frames."""
        return {k: a.get("type", a.get("counter", "")) for k, a in self.counters.items()}


def _parse(path: Path) -> ET.Element:
    data = read_regular(path)
    try:
        return ET.fromstring(data)
    except (ET.ParseError, LookupError, ValueError) as exc:  # (an unknown or impossible encoding="..." too)
        raise InputError(path, f"broken XML: {exc}") from None


def read_captured(path: Path) -> CapturedXml:
    """Read ``captured.xml``; :class:`InputError` when it is not XML or not a ``<captured>`` file."""
    root = _parse(path)
    if root.tag != "captured":
        raise InputError(path, f"root element is <{root.tag}>, expected <captured>")
    out = CapturedXml(attributes=dict(root.attrib))
    proto = root.get("protocol")
    if proto is not None:
        try:
            out.protocol = int(proto)
        except ValueError:
            out.problems.append(f"protocol {proto!r} is not a number")
    target = root.find("target")
    if target is not None:
        out.target = dict(target.attrib)
    for c in root.iterfind("counters/counter"):
        key = c.get("key")
        if key is None:
            continue  # capture-wide constants (9.x) have no key
        try:
            out.counters[int(key, 0)] = dict(c.attrib)
        except ValueError:
            out.problems.append(f"counter key {key!r} is not a number")
    return out


def read_events(path: Path) -> dict[str, EventInfo]:
    """``{counter: EventInfo}`` from ``events.xml``; PMU slot sets are keyed ``<set>:<event>``."""
    root = _parse(path)
    out: dict[str, EventInfo] = {}
    for cat in root.iter("category"):
        counter_set = cat.get("counter_set")
        for ev in cat.iterfind("event"):
            name = ev.get("counter") or (f"{counter_set}:{ev.get('event')}" if counter_set else None)
            if not name:
                continue
            try:
                mult = float(ev.get("multiplier", "1") or 1)
            except ValueError:
                mult = 1.0
            out[name] = EventInfo(
                counter=name,
                title=ev.get("title", ""),
                name=ev.get("name", ""),
                units=ev.get("units", ""),
                multiplier=mult,
                cls=ev.get("class", ""),
                display=ev.get("display", ""),
                description=ev.get("description", ""),
                category=cat.get("name", ""),
            )
    return out


def event_for(counter: dict[str, str], events: dict[str, EventInfo]) -> EventInfo | None:
    """The events.xml entry of one ``captured.xml`` counter (by type, or PMU slot set + event)."""
    ctype = counter.get("type", "")
    if ctype in events:
        return events[ctype]
    if "_cnt" in ctype and counter.get("event"):
        base = ctype[: ctype.rindex("_cnt") + 4]
        try:
            event = int(counter["event"], 0)
        except ValueError:
            return None
        for key, info in events.items():
            prefix, _, ev = key.partition(":")
            if prefix == base and _number(ev) == event:
                return info
    return None


def read_counters_xml(path: Path) -> list[str]:
    """Names of the counters the target offered (9.x ``counters.xml``)."""
    return [c.get("name", "") for c in _parse(path).iter("counter") if c.get("name")]


def _number(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None
