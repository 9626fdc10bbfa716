"""ONNX Runtime: one annotation per graph node, from onnxruntime's own profiler.

    import annotate
    from annotate.frameworks.onnx import OnnxRunner, profiled_session

    annotate.setup(file="run.sbm")
    session = profiled_session("squeezenet.onnx", profile_prefix="run/onnxruntime")
    runner = OnnxRunner(session, {"data": x}, "squeezenet")
    runner.warm_up(2)                  # not annotated
    for _ in range(20):
        runner.forward_layers()        # `iteration n` around one session.run
    runner.finish()                    # every node of every annotated run, on the marker clock

A run cannot be cut into nodes from Python, so each node's time comes from onnxruntime's profiler
(``SessionOptions.enable_profiling``): its ``Node`` events (``<node>_kernel_time``: start and
duration in µs since the profiler started, the operator in ``args.op_name``) inside its ``model_run``
events. The profiler's clock is placed on the marker clock run by run: the time taken right before
each annotated ``session.run`` (just after its ``iteration <n>`` marker) is matched to that run's
``model_run`` event, so a node at ``ts`` of a run that started at ``run_ts`` is annotated at
``marker + (ts - run_ts)``. The node annotations (``name___op``, on their block's channel, or
bookmarks) are sent by :meth:`OnnxRunner.finish`, stamped with those times, after the last run (the
profiler writes its file only when it ends); a node without a name is named after its operator
(repeats are told apart by the energy table). ``blocks`` maps node names to blocks (default: the
name before the first ``/`` or ``.``); :data:`annotate.conventions.BLOCKS_METADATA` in the model's
metadata gives them for a model exported by ``streamline-bridge``.

Standard library only; onnxruntime is imported by :func:`profiled_session` alone (the caller's
session brings it otherwise).
"""

import bisect
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from annotate.client import Client
from annotate.conventions import BLOCKS_METADATA, name_prefix
from annotate.frameworks import Layer, LayerMarks
from annotate.wire import now

KERNEL_SUFFIX = "_kernel_time"  # a node's own work in the profiler's events


# graph optimization levels: "basic" keeps every node of the model (each timed on its own);
# "extended" and "all" fuse nodes, as a deployment would, and the profile then has the fused ones
OPTIMIZATION = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def profiled_session(
    model: str, profile_prefix: str, providers: Optional[Sequence[str]] = None, optimization: str = "basic"
) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` at graph ``optimization`` level
    (:data:`OPTIMIZATION`) whose profiler writes ``<profile_prefix>_<date>.json``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, OPTIMIZATION[optimization])
    options.enable_profiling = True
    options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(model, sess_options=options, providers=list(providers) if providers else None)


def model_blocks(session: Any) -> Dict[str, str]:
    """``{node: block}`` from the model's metadata (:data:`annotate.conventions.BLOCKS_METADATA`), else ``{}``."""
    text = session.get_modelmeta().custom_metadata_map.get(BLOCKS_METADATA)
    return dict(json.loads(text)) if text else {}


def runs_and_nodes(events: Sequence[Mapping[str, Any]]) -> List[Tuple[int, int, List[Tuple[str, str, int, int]]]]:
    """``[(run ts, run dur, [(node, op, ts, dur), ...]), ...]`` in run order (µs) from profiler events;
    a node belongs to the run whose span holds its start."""
    runs = sorted(
        (int(e["ts"]), int(e["dur"])) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    out: List[Tuple[int, int, List[Tuple[str, str, int, int]]]] = [(ts, dur, []) for ts, dur in runs]
    starts = [ts for ts, _ in runs]
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        ts = int(e["ts"])
        i = bisect.bisect_right(starts, ts) - 1
        if i >= 0 and ts <= runs[i][0] + runs[i][1]:
            op = str(e.get("args", {}).get("op_name", ""))
            out[i][2].append((name[: -len(KERNEL_SUFFIX)] or op, op, ts, int(e["dur"])))
    for _, _, nodes in out:
        nodes.sort(key=lambda n: n[2])
    return out


class OnnxRunner:
    """Runs a profiled ``onnxruntime.InferenceSession`` with per-node (or per-run) annotations."""

    def __init__(
        self,
        session: Any,
        feeds: Mapping[str, Any],
        network: str = "onnx",
        style: str = "channels",
        client: Optional[Client] = None,
        blocks: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.session, self.feeds = session, dict(feeds)
        self.marks = LayerMarks(network, style=style, client=client)
        self.blocks = dict(blocks if blocks is not None else model_blocks(session))
        self.whole = self.marks.layer(network, "Net")
        self.layers: Dict[Tuple[str, str], Layer] = {}
        self.output: Any = None
        self.iteration = 0
        self._runs = 0  # session.run calls so far (the profiler's model_run events, in order)
        self._marked: Dict[int, int] = {}  # run index -> marker-clock ns taken right before it

    def _run(self) -> None:
        self.output = self.session.run(None, self.feeds)
        self._runs += 1

    def forward_layers(self) -> None:
        """One annotated iteration: its nodes are annotated by :meth:`finish`."""
        self.marks.iteration_start(self.iteration)
        self._marked[self._runs] = now()
        self._run()
        self.marks.iteration_stop()
        self.iteration += 1

    def forward_whole(self) -> None:
        """One annotated iteration, the whole run in one interval named after the network."""
        self.marks.whole(self.iteration, self.whole, self._run)
        self.iteration += 1

    def warm_up(self, n: int, layer_by_layer: bool = True) -> None:
        """``n`` runs without annotations (``layer_by_layer`` has no effect: a run is one call)."""
        for _ in range(n):
            self._run()

    def layer(self, node: str, op: str) -> Layer:
        """The annotation of one node (made on first use)."""
        key = (node, op)
        if key not in self.layers:
            self.layers[key] = self.marks.layer(node, op, self.blocks.get(node) or name_prefix(node.lstrip("/")))
        return self.layers[key]

    def finish(self) -> List[str]:
        """End the profiler and annotate every node of every :meth:`forward_layers` run at its
        time on the marker clock; returns warnings (runs the profile does not have)."""
        with open(self.session.end_profiling(), encoding="utf-8") as f:
            runs = runs_and_nodes(json.load(f))
        warnings = []
        missing = [i for i in self._marked if i >= len(runs)]
        if missing:
            warnings.append(
                f"the profiler recorded {len(runs)} runs of {self._runs}: "
                f"{len(missing)} annotated run(s) have no node times"
            )
        for index, marker_ns in sorted(self._marked.items()):
            if index >= len(runs):
                continue
            run_ts, _, nodes = runs[index]
            for node, op, ts, dur in nodes:
                layer = self.layer(node, op)
                start = marker_ns + (ts - run_ts) * 1000
                layer.start(time=start)
                layer.stop(time=start + dur * 1000)
        return warnings
