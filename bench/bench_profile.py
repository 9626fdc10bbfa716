"""What profiling costs the profiled network: SqueezeNet v1.1 (224x224, pycaffe, CPU) run layer by
layer with per-layer markers and the power sampler running, against the same net run layer by
layer with neither, in the same process.

Cases, alternated (the order rotates every round so that drift and warm-up favour none):
``bare`` (layer by layer, no markers, no sampler: the baseline), ``markers`` (channel texts to a
marker log, as ``profile`` writes them), ``profiled`` (markers + the sampler child at 1 kHz on this
machine's power source, started before the round's forwards and stopped after them; its CPU share
is reported too), ``whole``
(the net in one call, no markers: what running layer by layer costs by itself). Each round times
N forwards per case; the figure is the best round's mean wall time per forward (the least disturbed
by other work on the machine; the sampler and the markers are there in every round of their case).
Goal: ``profiled`` within 3 % of ``bare`` (a Jetson Xavier power workflow in MLCommons' power-dev
added 14 %).

``python -m bench profile`` (needs pycaffe: scripts/build-pycaffe.sh .venv/bin/python).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

try:
    from bench.run import Result
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.run import Result

GOAL = 1.03
SIZE = 224


def _net(caffe: Any, tmp: Path) -> Any:
    from streamline_bridge.nets import imagenet
    from streamline_bridge.nets.squeezenet import squeezenet_v1_1

    prototxt = tmp / "squeezenet_v1.1.prototxt"
    prototxt.write_text(squeezenet_v1_1(size=SIZE))
    caffe.set_random_seed(0)
    net = caffe.Net(str(prototxt), caffe.TEST)
    net.blobs["data"].data[0] = imagenet.preprocess(imagenet.synthetic_image(SIZE), SIZE, SIZE)
    return net


def _per_forward(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def run(quick: bool) -> list[Result]:
    from annotate import Client
    from annotate.frameworks.caffe import CaffeRunner
    from streamline_bridge.commands.profile import import_caffe
    from streamline_bridge.errors import InputError
    from streamline_bridge.power import Sampler

    try:
        caffe = import_caffe()
    except InputError as exc:
        print(f"bench profile: skipped: {exc}", file=sys.stderr)
        return []
    rounds, n = (3, 3) if quick else (20, 5)
    times: dict[str, list[float]] = {"bare": [], "markers": [], "profiled": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        net = _net(caffe, tmp)
        client = Client(file=tmp / "bench.sbm")
        runner = CaffeRunner(net, "SqueezeNet_v1.1", client=client)
        runner.warm_up(3)
        source, cpu_share = "", []

        def profiled() -> float:
            nonlocal source
            with Sampler(tmp / f"power-{len(times['profiled'])}.sbp", rate_hz=1000) as sampler:
                source = sampler.info["source"]
                per_forward = _per_forward(runner.forward_layers, n)
            cpu_share.append(sampler.stats["cpu_share"])
            return per_forward

        cases: dict[str, Callable[[], float]] = {
            "bare": lambda: _per_forward(lambda: runner.warm_up(1), n),
            "markers": lambda: _per_forward(runner.forward_layers, n),
            "profiled": profiled,
            "whole": lambda: _per_forward(lambda: runner.warm_up(1, layer_by_layer=False), n),
        }
        names = list(cases)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(cases[name]())
        client.close()
    ms = {name: min(t) * 1e3 for name, t in times.items()}
    cpus = os.cpu_count()
    what = f"ms/forward, SqueezeNet v1.1 {SIZE}px, {rounds}x{n} forwards, {cpus} CPUs"
    return [
        Result("profile", f"markers + sampler ({source}, 1 kHz), layer by layer", ms["profiled"], what,
               ms["bare"], "layer by layer, no markers, no sampler", f"<= {GOAL:.2f}x (adds < 3%)",
               ms["profiled"] <= GOAL * ms["bare"]),
        Result("profile", "markers only, layer by layer", ms["markers"], what, ms["bare"],
               "layer by layer, no markers, no sampler", "information"),
        Result("profile", "layer by layer, no markers", ms["bare"], what, ms["whole"], "whole net in one call",
               "information"),
        Result("profile", f"sampler CPU share ({source}, 1 kHz)", statistics.median(cpu_share) * 100,
               "% of one CPU", goal="information"),
    ]


if __name__ == "__main__":
    from bench.run import _print

    _print(run("--quick" in sys.argv))
