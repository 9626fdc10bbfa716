"""What profiling costs the profiled network: SqueezeNet v1.1 (224x224, pycaffe, CPU) run layer by
layer with per-layer markers and the power sampler running, against the same net run layer by
layer with neither, in the same process.

Cases, in a shuffled order every round so that drift and warm-up favour none: ``bare`` (layer by
layer, no markers, no sampler: the baseline), ``markers`` (channel texts to a marker log, as
``profile`` writes them), ``profiled`` (markers + the sampler child at 1 kHz on this machine's power
source, started before the round's forwards and stopped after them; its CPU share is reported too),
``wakeups`` (markers + a child that only wakes on the sampler's deadlines, :mod:`bench.wakeups`:
what waking 1000 times a second costs on this machine, the floor of any 1 kHz sampler), ``whole``
(the net in one call, no markers: what running layer by layer costs by itself). Each round times N
forwards per case; a case's figure is the median over rounds of its time divided by ``bare``'s in
the same round, with a bootstrap 95% confidence interval (the machine's speed changes from round
to round, more than the effect measured; pairing within a round cancels most of that).
Goal: ``profiled`` within 3 % of ``bare`` (a Jetson Xavier power workflow in MLCommons' power-dev
added 14 %).

``python -m bench profile`` (needs pycaffe: scripts/build-pycaffe.sh .venv/bin/python).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:
    from bench.run import Result
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.run import Result
from bench.wakeups import Wakeups
from streamline_bridge.power.sampler import Config

GOAL = 1.03
SIZE = 224
RATE_HZ = 1000.0


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


def _paired(times: dict[str, list[float]], name: str, seed: int = 0) -> tuple[float, float, float]:
    """Median over rounds of ``name``'s time / ``bare``'s time in the same round, and its 95% CI
    (bootstrap of the median): robust to the machine's speed changing from round to round."""
    ratio = np.array(times[name]) / np.array(times["bare"])
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(ratio, (2000, len(ratio))), axis=1)
    return float(np.median(ratio)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


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
    rounds, n = (3, 2) if quick else (40, 5)
    times: dict[str, list[float]] = {"bare": [], "markers": [], "profiled": [], "wakeups": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        net = _net(caffe, tmp)
        client = Client(file=tmp / "bench.sbm")
        runner = CaffeRunner(net, "SqueezeNet_v1.1", client=client)
        runner.warm_up(3)
        source, cpu_share = "", []

        def profiled() -> float:
            nonlocal source
            with Sampler(tmp / "power.sbp", rate_hz=RATE_HZ) as sampler:
                source = sampler.info["source"]
                per_forward = _per_forward(runner.forward_layers, n)
            cpu_share.append(sampler.stats["cpu_share"])
            return per_forward

        def wakeups() -> float:
            with Wakeups(RATE_HZ, Config.spin_us):
                return _per_forward(runner.forward_layers, n)

        cases: dict[str, Callable[[], float]] = {
            "bare": lambda: _per_forward(lambda: runner.warm_up(1), n),
            "markers": lambda: _per_forward(runner.forward_layers, n),
            "profiled": profiled,
            "wakeups": wakeups,
            "whole": lambda: _per_forward(lambda: runner.warm_up(1, layer_by_layer=False), n),
        }
        names = list(cases)
        for r in range(rounds):
            random.Random(r).shuffle(names)
            for name in names:
                times[name].append(cases[name]())
        client.close()
    what = f"x bare (median of {rounds} rounds x {n} forwards, {SIZE}px, {os.cpu_count()} CPUs)"
    results = []
    for name, metric, goal in (
            ("profiled", f"markers + sampler ({source}, {RATE_HZ:g} Hz), layer by layer", f"<= {GOAL:.2f}x (adds < 3%)"),
            ("markers", "markers only, layer by layer", "information"),
            ("wakeups", f"markers + a process that only wakes at {RATE_HZ:g} Hz (floor of any sampler)", "information")):
        ratio, low, high = _paired(times, name)
        results.append(Result("profile", metric, ratio, f"{what}, 95% CI [{low:.3f}, {high:.3f}]",
                              goal=goal, ok=ratio <= GOAL if name == "profiled" else None))
    bare, whole = statistics.median(times["bare"]) * 1e3, statistics.median(times["whole"]) * 1e3
    return results + [
        Result("profile", "layer by layer, no markers", bare, "ms/forward (median)", whole,
               "whole net in one call", "information"),
        Result("profile", f"sampler CPU share ({source}, {RATE_HZ:g} Hz)", statistics.median(cpu_share) * 100,
               "% of one CPU", goal="information"),
    ]


if __name__ == "__main__":
    from bench.run import _print

    _print(run("--quick" in sys.argv))
