"""Round trip: random calls encoded by ``annotate.wire`` (byte-exact against the C library) decode to their arguments."""

from __future__ import annotations

from unittest import mock

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate import wire
from streamline_bridge.ingest import annotation_fields
from streamline_bridge.ingest.annotation_stream import StreamDecoder, decode

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
times = st.integers(0, 2**63 - 1)
colors = st.integers(0, 2**32 - 1)
tails = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)  # tail strings may hold NUL
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)


def call(code, encode, **fields):
    return st.fixed_dictionaries(fields).map(lambda f: (code, encode(**f), f))


def _counter(f):
    return wire.counter(
        f["key"],
        f["title"],
        f["name"],
        per_cpu=f["per_cpu"],
        counter_class=f["class"],
        display=f["display"],
        units=f["units"],
        modifier=f["modifier"],
        series_composition=f["series_composition"],
        rendering_type=f["rendering_type"],
        average_selection=f["average_selection"],
        average_cores=f["average_cores"],
        percentage=f["percentage"],
        activities=[a for a, _ in f["activities"]],
        activity_colors=[c for _, c in f["activities"]],
        cores=f["cores"],
        color=f["color"],
        description=f["description"],
    )


COUNTER = st.fixed_dictionaries(
    {
        "key": i32,
        "per_cpu": st.integers(0, 1),
        "class": i32,
        "display": i32,
        "modifier": i32,
        "series_composition": i32,
        "rendering_type": i32,
        "average_selection": st.integers(0, 1),
        "average_cores": st.integers(0, 1),
        "percentage": st.integers(0, 1),
        "cores": i32,
        "color": colors,
        "activities": st.lists(st.tuples(names, colors), max_size=3),
        "title": names,
        "name": names,
        "units": names,
        "description": tails,
    }
).map(lambda f: (8, _counter(f), {**f, "activity_count": len(f["activities"])}))

MESSAGES = st.one_of(
    call(1, lambda time, channel, text: wire.text(time, channel, text), time=times, channel=i32, text=tails),
    call(
        2,
        lambda time, channel, color, text: wire.text_color(time, channel, color, text),
        time=times,
        channel=i32,
        color=colors,
        text=tails,
    ),
    call(
        3,
        lambda time, channel, group, name: wire.name_channel(time, channel, group, name),
        time=times,
        channel=i32,
        group=i32,
        name=tails,
    ),
    call(4, lambda time, group, name: wire.name_group(time, group, name), time=times, group=i32, name=tails),
    call(
        5,
        lambda time, text, image: wire.visual(time, text, image),
        time=times,
        text=names,
        image=st.binary(max_size=40),
    ),
    call(6, lambda time, text: wire.marker(time, text), time=times, text=tails),
    call(7, lambda time, color, text: wire.marker_color(time, color, text), time=times, color=colors, text=tails),
    COUNTER,
    call(
        9,
        lambda time, core, key, value: wire.counter_value(time, core, key, value, protocol=5),
        time=times,
        core=i32,
        key=i32,
        value=i64,
    ),
    call(
        10,
        lambda time, core, key, activity, tid: wire.activity_switch(time, core, key, activity, tid),
        time=times,
        core=i32,
        key=i32,
        activity=i32,
        tid=i32,
    ),
    call(
        11,
        lambda view, track, parent, name: wire.cam_track(view, track, parent, name),
        view=i32,
        track=i32,
        parent=i32,
        name=tails,
    ),
    call(
        12,
        lambda view, job, track, start, duration, color, primary_dep, deps, name: wire.cam_job(
            view, job, name, track, start, duration, color, primary_dep, deps
        ),
        view=i32,
        job=i32,
        track=i32,
        start=times,
        duration=times,
        color=colors,
        primary_dep=i32,
        deps=st.lists(i32, max_size=4),
        name=tails,
    ),
    call(13, lambda view, name: wire.cam_view_name(view, name), view=i32, name=tails),
    call(
        14,
        lambda view, job, track, time, color, name: wire.cam_job_start(view, job, name, track, time, color),
        view=i32,
        job=i32,
        track=i32,
        time=times,
        color=colors,
        name=tails,
    ),
    call(
        15,
        lambda view, job, time, primary_dep, deps: wire.cam_job_set_dependencies(view, job, time, primary_dep, deps),
        view=i32,
        job=i32,
        time=times,
        primary_dep=i32,
        deps=st.lists(i32, max_size=4),
    ),
    call(16, lambda view, job, time: wire.cam_job_stop(view, job, time), view=i32, job=i32, time=times),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(MESSAGES, max_size=40), st.integers(1, 97))
def test_random_calls_round_trip(calls, piece):
    data = wire.handshake(11, 22, protocol=5) + b"".join(raw for _, raw, _ in calls)
    d = decode(data)
    got = [(m.code, m.fields) for m in d.messages()]
    assert got == [(code, fields) for code, _, fields in calls]
    m = d.markers()
    assert len(m) == len(calls) and (m["tid"] == 11).all()
    dec = StreamDecoder()  # the same bytes in pieces decode alike
    pieces = [dec.feed(data[i : i + piece]) for i in range(0, len(data), piece)]
    dec.finish()
    assert [(x.code, x.fields) for p in pieces for x in p.messages()] == got
    for vector_min in (0, 10**9):  # every code vectorised / every message one by one: the same result
        with mock.patch.object(annotation_fields, "VECTOR_MIN", vector_min):
            other = decode(data)
        assert [(x.code, x.fields) for x in other.messages()] == got
        pd.testing.assert_frame_equal(other.markers(), m)
