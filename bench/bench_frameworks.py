"""SqueezeNet v1.1 (224x224, 64x64 with ``--quick``; CPU, seeded random weights, the threads each
framework starts with) layer by layer in the three frameworks ``profile`` runs: Caffe (pycaffe, one
layer per call), PyTorch (leaf-module hooks, ``torch.inference_mode``) and ONNX Runtime (the same
model exported, every node timed by its profiler, ``basic`` optimization), each in a process of its
own. Each runs ``N`` annotated forwards into its own marker log after two unannotated ones; the
layers' intervals are read back as ``report`` reads them, and the median time of each layer over
the forwards is printed side by side, rows matched by
``streamline_bridge.nets.torch_squeezenet.CAFFE_NAMES`` (PyTorch and the ONNX export name layers
alike). The results: each framework's sum of per-layer medians and its whole forward (one interval
per forward), against Caffe's in the same run. A framework that is not installed is left out.
``python -m bench frameworks``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import Result, scratch_dir

SIZE, QUICK_SIZE = 224, 64  # --quick: a smoke run of seconds, not figures to compare


def _args(framework: str, size: int) -> argparse.Namespace:
    """The options ``profile FRAMEWORK`` would have with its defaults (built-in net, synthetic image)."""
    return argparse.Namespace(
        framework=framework,
        model=None,
        weights=None,
        image=None,
        mean="104,117,123",
        mean_file=None,
        size=size,
        input_shape=None,
        device="cpu",
        providers=None,
        optimization="basic",
        seed=0,
    )


def _forwards(framework: str, whole: bool, forwards: int, size: int, tmp: Path) -> list[tuple[str, float]] | None:
    """``[(layer, ms), ...]`` of ``forwards`` annotated forwards (layer by layer, or ``whole``), read
    back from their marker log; None when the framework is not installed."""
    from annotate import Client
    from streamline_bridge import ingest
    from streamline_bridge.energy.intervals import find_intervals
    from streamline_bridge.errors import InputError
    from streamline_bridge.profiling import framework as module

    try:
        session = module(framework).load(_args(framework, size))
    except InputError:
        return None
    log = tmp / f"{framework}-{'whole' if whole else 'layers'}.sbm"
    client = Client(file=log, gatord=False)
    runner = session.runner("channels", client)
    runner.warm_up(2, layer_by_layer=not whole)
    step: Callable[[], Any] = runner.forward_whole if whole else runner.forward_layers
    for _ in range(forwards):
        step()
    session.finish(tmp)
    client.close()
    layers = find_intervals(ingest.read(log).markers).layers
    return list(zip(layers["name"].astype(str), (layers["end_ns"] - layers["start_ns"]) / 1e6))


def _medians(framework: str, forwards: int, size: int, tmp: Path) -> tuple[dict[str, float], float] | None:
    """``({layer: median ms}, median whole-forward ms)`` of one framework, None when it is missing."""
    layers = _forwards(framework, False, forwards, size, tmp)
    whole = _forwards(framework, True, forwards, size, tmp)
    if layers is None or whole is None:
        return None
    times: dict[str, list[float]] = {}
    for name, ms in layers:
        times.setdefault(name, []).append(ms)
    return {name: statistics.median(v) for name, v in times.items()}, statistics.median(ms for _, ms in whole)


def _table(per: dict[str, dict[str, float]], size: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from streamline_bridge.nets.torch_squeezenet import CAFFE_NAMES

    t = Table(title=f"SqueezeNet v1.1 {size}x{size}, median ms per layer")
    t.add_column("caffe layer")
    t.add_column("torch / onnx layer")
    for name in per:
        t.add_column(name, justify="right")
    for caffe_name, torch_name in CAFFE_NAMES.items():
        keys = {"caffe": caffe_name, "torch": torch_name, "onnx": torch_name}
        t.add_row(caffe_name, torch_name, *(_ms(per[f].get(keys[f])) for f in per))
    t.add_row("sum", "", *(_ms(sum(per[f].values())) for f in per))
    Console(width=160).print(t)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(quick: bool) -> list[Result]:
    forwards, size = (3, QUICK_SIZE) if quick else (30, SIZE)
    per: dict[str, dict[str, float]] = {}
    whole: dict[str, float] = {}
    tmp = scratch_dir("bench-frameworks-")
    try:
        for framework in ("caffe", "torch", "onnx"):
            # each in a process of its own: one framework's idle thread pool (OpenBLAS, OpenMP)
            # spinning beside another's slowed PyTorch a hundredfold here
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                got = pool.apply(_medians, (framework, forwards, size, tmp))
            if got is not None:
                per[framework], whole[framework] = got
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not per:
        return []
    _table(per, size)
    base = "caffe" if "caffe" in per else next(iter(per))
    out = []
    for framework in per:
        out.append(
            Result(
                "frameworks",
                f"{framework}: sum of per-layer medians ({forwards} forwards)",
                sum(per[framework].values()),
                "ms",
                sum(per[base].values()),
                base,
            )
        )
        out.append(
            Result("frameworks", f"{framework}: whole forward, median", whole[framework], "ms", whole[base], base)
        )
    return out
