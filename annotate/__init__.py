"""Arm Streamline annotations from Python: a standard-library-only client of gatord's annotation
channel, byte-for-byte compatible with Arm's ``streamline_annotate.c``, with a marker-file mirror
(``STREAMLINE_ANNOTATE_FILE=PATH``) that also works with no gatord at all.

    import annotate
    annotate.name_channel(3, 1, "layers")
    with annotate.region("conv1", channel=3, color=annotate.GREEN):
        ...
    annotate.marker("epoch 1")

The module-level functions use one default :class:`Client`, set up on first use from the
environment (or explicitly with :func:`setup`). Calls never block on gatord and never raise
because of the channel. See ``docs/annotate.md``.
"""

from annotate.client import Client, Region, shutdown_all
from annotate.wire import (
    ABSOLUTE,
    ACCUMULATE,
    ACTIVITY,
    AVERAGE,
    BAR,
    BLACK,
    BLUE,
    COLOR_CYCLE,
    COLOR_T1,
    COLOR_T2,
    COLOR_T3,
    COLOR_T4,
    CYAN,
    DELTA,
    DKGRAY,
    FILL,
    GREEN,
    HERTZ,
    INCIDENT,
    LINE,
    LOG10,
    LTGRAY,
    MAXIMUM,
    MINIMUM,
    OVERLAY,
    PURPLE,
    RED,
    STACKED,
    WHITE,
    YELLOW,
    now,
    rgb,
)

_default = Client()

setup = _default.setup
flush = _default.flush
shutdown = _default.close
text = _default.text
end = _default.end
prepare_text = _default.prepare_text
marker = _default.marker
name_channel = _default.name_channel
name_group = _default.name_group
visual = _default.visual
counter = _default.counter
absolute_counter = _default.absolute_counter
delta_counter = _default.delta_counter
counter_value = _default.counter_value
activity_switch = _default.activity_switch
cam_view_name = _default.cam_view_name
cam_track = _default.cam_track
cam_job = _default.cam_job
cam_job_start = _default.cam_job_start
cam_job_set_dependencies = _default.cam_job_set_dependencies
cam_job_stop = _default.cam_job_stop
region = _default.region


def default_client() -> Client:
    """The client behind the module-level functions."""
    return _default


__all__ = [
    "Client",
    "Region",
    "default_client",
    "setup",
    "flush",
    "shutdown",
    "shutdown_all",
    "now",
    "rgb",
    "text",
    "end",
    "prepare_text",
    "marker",
    "name_channel",
    "name_group",
    "visual",
    "counter",
    "absolute_counter",
    "delta_counter",
    "counter_value",
    "activity_switch",
    "cam_view_name",
    "cam_track",
    "cam_job",
    "cam_job_start",
    "cam_job_set_dependencies",
    "cam_job_stop",
    "region",
    "RED",
    "BLUE",
    "GREEN",
    "PURPLE",
    "YELLOW",
    "CYAN",
    "WHITE",
    "LTGRAY",
    "DKGRAY",
    "BLACK",
    "COLOR_CYCLE",
    "COLOR_T1",
    "COLOR_T2",
    "COLOR_T3",
    "COLOR_T4",
    "DELTA",
    "ABSOLUTE",
    "ACTIVITY",
    "INCIDENT",
    "AVERAGE",
    "ACCUMULATE",
    "HERTZ",
    "MAXIMUM",
    "MINIMUM",
    "STACKED",
    "OVERLAY",
    "LOG10",
    "FILL",
    "LINE",
    "BAR",
]
