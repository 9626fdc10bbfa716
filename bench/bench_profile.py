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
forwards per case after one untimed; a case's figure is the median over rounds of its time divided
by ``bare``'s in the same round, with a bootstrap 95% confidence interval (the machine's speed
changes from round to round, more than the effect measured; pairing within a round cancels most
of that). Then the same again in a child process that keeps a CPU for the sampler and the waker
(``--reserve-cpu``). Goal: ``profiled`` within 3 % of ``bare`` (a Jetson Xavier power workflow in
MLCommons' power-dev added 14 %).

``python -m bench profile`` (needs pycaffe: scripts/build-pycaffe.sh .venv/bin/python).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import Result
from bench.wakeups import ROOT, Wakeups
from streamline_bridge.power.sampling import Config

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
    """Mean wall time of ``n`` calls of ``fn``, after one untimed call (the caches after a case
    switch, a child's start-up: the steady state is what a profile of many iterations sees)."""
    fn()
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


def _measure(caffe: Any, quick: bool, cpu: int | None) -> list[Result]:
    """The cases in alternation in this process; ``cpu``: the sampler's (and the waker's) own CPU."""
    from annotate import Client
    from annotate.frameworks.caffe import CaffeRunner
    from streamline_bridge.power import Sampler

    rounds, n = (3, 2) if quick else (60, 4)
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
            (tmp / "power.sbp").unlink(missing_ok=True)  # the sampler creates its log new
            with Sampler(tmp / "power.sbp", rate_hz=RATE_HZ, cpu=cpu) as sampler:
                source = sampler.info["source"]
                per_forward = _per_forward(runner.forward_layers, n)
            cpu_share.append(sampler.stats["cpu_share"])
            return per_forward

        def wakeups() -> float:
            with Wakeups(RATE_HZ, Config.spin_us, cpu=cpu):
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
    where = f", the sampler alone on CPU {cpu}" if cpu is not None else ""
    what = (
        f"x bare (median of {rounds} rounds x {n} forwards, {SIZE}px, the net on {len(os.sched_getaffinity(0))} CPUs)"
    )
    results = []
    for name, metric, goal in (
        ("profiled", f"markers + sampler ({source}, {RATE_HZ:g} Hz){where}", f"<= {GOAL:.2f}x (adds < 3%)"),
        ("markers", f"markers only{where}", "information"),
        ("wakeups", f"markers + a process that only wakes at {RATE_HZ:g} Hz{where}", "information"),
    ):
        ratio, low, high = _paired(times, name)
        results.append(
            Result(
                "profile",
                metric,
                ratio,
                f"{what}, 95% CI [{low:.3f}, {high:.3f}]",
                goal=goal,
                ok=ratio <= GOAL if name == "profiled" else None,
            )
        )
    bare, whole = statistics.median(times["bare"]) * 1e3, statistics.median(times["whole"]) * 1e3
    return results + [
        Result(
            "profile",
            f"layer by layer, no markers{where}",
            bare,
            "ms/forward (median)",
            whole,
            "whole net in one call",
            "information",
        ),
        Result(
            "profile",
            f"sampler CPU share ({source}, {RATE_HZ:g} Hz){where}",
            statistics.median(cpu_share) * 100,
            "% of one CPU",
            goal="information",
        ),
    ]


def _reserved(quick: bool) -> list[Result]:
    """:func:`_measure` in a child process that keeps a CPU for the sampler (``--reserve-cpu``): the
    net's BLAS threads are sized from the CPUs left when caffe is imported, so not in this process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_profile", "--reserved", *(["--quick"] if quick else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return [Result(**fields) for fields in json.loads(out)]


def run(quick: bool) -> list[Result]:
    from streamline_bridge.errors import InputError
    from streamline_bridge.profiling.caffe import import_caffe

    try:
        caffe = import_caffe()
    except InputError as exc:
        print(f"bench profile: skipped: {exc}", file=sys.stderr)
        return []
    results = _measure(caffe, quick, None)
    return results + (_reserved(quick) if len(os.sched_getaffinity(0)) > 1 else [])


if __name__ == "__main__":
    if "--reserved" in sys.argv:
        from streamline_bridge.power.tuning import reserve_cpu
        from streamline_bridge.profiling.caffe import import_caffe

        cpu = reserve_cpu()
        print(json.dumps([asdict(r) for r in _measure(import_caffe(), "--quick" in sys.argv, cpu)]))
    else:
        from bench.run import _print

        _print(run("--quick" in sys.argv))
