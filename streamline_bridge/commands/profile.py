"""Run a network layer by layer in this process with layer markers and the power sampler, then
print the per-layer time and energy table.

    streamline-bridge profile caffe -o runs/squeezenet
    streamline-bridge profile caffe --model deploy.prototxt --weights model.caffemodel \\
        --image cat.jpg --labels synset_words.txt -o runs/cat
    streamline-bridge profile torch --model torchvision.models:squeezenet1_1 -o runs/torch
    streamline-bridge profile onnx model.onnx -o runs/onnx

The sampler runs in its own process from before an idle phase to after another one (as in
``record``); between them the net runs ``--warmup`` forwards without markers, then
``--iterations`` forwards layer by layer, every layer in its own interval, into RUN_DIR's marker
log: Caffe one layer at a time (``annotate.frameworks.caffe``), PyTorch with hooks on its leaf
modules (``annotate.frameworks.torch``; ``--device cuda`` synchronises before every marker),
ONNX Runtime with every node's time from its own profiler (``annotate.frameworks.onnx``). RUN_DIR
is a run folder (docs/run-folder.md; ``report RUN_DIR`` reads it again) that also gets the table
(``table.csv`` + ``table.meta.json``, ``table.json``), ``plot.png`` and ``trace.json``.

Input as Caffe's ImageNet models expect it: BGR, 0-255, minus the per-channel mean (default
104,117,123), resized to the input (bilinear, no antialiasing). Without ``--model``: SqueezeNet
v1.1 at 224x224 written by the project (``streamline_bridge.nets``; for ONNX exported from the
PyTorch one) with seeded random weights unless ``--weights CAFFEMODEL`` is given (time and
energy do not depend on weight values; classes do). Without ``--image``: a deterministic
synthetic image. Each framework's own options: ``streamline_bridge.profiling``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamline_bridge.profiling import FRAMEWORKS

HELP = "run a network layer by layer with markers and the power sampler; print per-layer energy"
OUTPUTS = ("table.csv", "table.json", "plot.png", "trace.json")
# the options that go into the manifest's command when set (every framework's, declared below)
VALUE_OPTIONS = (
    "model",
    "weights",
    "image",
    "labels",
    "mean_file",
    "size",
    "input_shape",
    "device",
    "providers",
    "optimization",
    "preprocess",
    "source",
    "sysfs_root",
    "sensor_model",
)
FRAMEWORK_OPTIONS = (
    "model",
    "weights",
    "size",
    "input_shape",
    "device",
    "providers",
    "optimization",
    "mean",
    "mean_file",
    "preprocess",
)  # each framework module's OPTIONS says which it takes
DEFAULTS = {"device": "cpu", "optimization": "basic", "mean": "104,117,123", "preprocess": "caffe"}


def configure(parser: argparse.ArgumentParser) -> None:
    from annotate.frameworks.onnx import OPTIMIZATION
    from streamline_bridge.commands.method import add_method_argument
    from streamline_bridge.commands.record import add_sampler_arguments

    parser.add_argument("framework", choices=FRAMEWORKS, help="the framework that runs the net")
    parser.add_argument("model_file", nargs="?", metavar="MODEL", help="the model (same as --model)")
    parser.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder to create")
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="caffe: PROTOTXT; torch: PKG.MODULE:FACTORY, a .pt2 (torch.export) or TorchScript "
        "file; onnx: MODEL.onnx (default: built-in SqueezeNet v1.1)",
    )
    parser.add_argument(
        "--weights",
        metavar="CAFFEMODEL",
        help="trained weights: the net's (caffe), or the built-in SqueezeNet's converted layer by "
        "layer (torch, onnx) (default: seeded random weights)",
    )
    parser.add_argument("--image", metavar="IMG", help="input image (default: a synthetic one)")
    parser.add_argument("--labels", metavar="SYNSET", help="class names (synset_words.txt): print the top-5 classes")
    mean = parser.add_mutually_exclusive_group()
    mean.add_argument("--mean", metavar="B,G,R", help="per-channel mean (default 104,117,123)")
    mean.add_argument("--mean-file", metavar="NPY", help="mean image, 3 x H x W BGR (ilsvrc_2012_mean.npy)")
    parser.add_argument(
        "--size", type=int, metavar="PX", help="input size: 1x3xPXxPX (default: the model's, batch 1; built-in 224)"
    )
    parser.add_argument("--input-shape", metavar="N,C,H,W", help="torch, onnx: the input's shape")
    parser.add_argument(
        "--preprocess",
        choices=("caffe", "torchvision"),
        help="torch, onnx: the image as Caffe's models take it (default: BGR, 0-255, minus --mean) "
        "or as torchvision's (RGB, 0-1, normalised by ImageNet's mean and deviation)",
    )
    parser.add_argument("--device", metavar="DEV", help="torch: cpu (default), cuda, cuda:N")
    parser.add_argument(
        "--providers", metavar="EP,...", help="onnx: execution providers in order (default: onnxruntime's default)"
    )
    parser.add_argument(
        "--optimization",
        choices=tuple(OPTIMIZATION),
        help="onnx: graph optimization level (default basic: every node timed on its own)",
    )
    parser.add_argument("--iterations", type=int, default=20, metavar="N", help="measured forwards (default 20)")
    parser.add_argument(
        "--warmup", type=int, default=2, metavar="K", help="forwards before, without markers (default 2)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights and synthetic image (default 0)"
    )
    parser.add_argument(
        "--style",
        choices=("channels", "markers"),
        default="channels",
        help="layer annotations: channel texts (default) or bookmarks (docs/energy-table.md)",
    )
    parser.add_argument(
        "--whole-net",
        action="store_true",
        help="one interval per forward (the whole net in one call) instead of one per layer",
    )
    add_sampler_arguments(parser)
    add_method_argument(parser)


def _check_args(args: argparse.Namespace) -> None:
    """Usage errors, before anything runs; fills the framework options' defaults."""
    from streamline_bridge.errors import InputError
    from streamline_bridge.profiling import _existing, framework, mean

    if args.model_file is not None:
        if args.model is not None and args.model != args.model_file:
            raise InputError(None, f"two models: {args.model_file} and --model {args.model}")
        args.model = args.model_file
    if args.preprocess == "torchvision" and (args.mean is not None or args.mean_file is not None):
        raise InputError(None, "--mean and --mean-file are Caffe's preprocessing, not torchvision's")
    module = framework(args.framework)
    takes = module.OPTIONS
    if not getattr(module, "ISOLATES", True) and args.method != "sequence":
        if args.method != "auto":
            raise InputError(None, f"--method {args.method}: profile {args.framework} cannot run a layer alone")
        args.method = "sequence"  # auto: the layers the sequence does not resolve stay unresolved (and say so)
    for option in FRAMEWORK_OPTIONS:
        if getattr(args, option) is not None and option not in takes:
            raise InputError(None, f"--{option.replace('_', '-')} is not an option of profile {args.framework}")
        if getattr(args, option) is None and option in takes:
            setattr(args, option, DEFAULTS.get(option))
    if args.iterations < 1:
        raise InputError(None, "--iterations must be 1 or more")
    if args.warmup < 0:
        raise InputError(None, "--warmup must be 0 or more")
    if args.size is not None and args.size < 16:
        raise InputError(None, "--size must be at least 16 pixels")
    if args.idle < 0:
        raise InputError(None, "--idle must be 0 or more")
    for path, what in ((args.image, "image"), (args.labels, "labels"), (args.mean_file, "mean")):
        _existing(path, what)
    if args.mean is not None:
        mean(args)


def _command(args: argparse.Namespace) -> list[str]:
    """The profile as the command line that would repeat it (the manifest's ``command``)."""
    cmd = ["streamline-bridge", "profile", args.framework, "-o", str(args.output)]
    for flag in VALUE_OPTIONS:
        value = getattr(args, flag)
        if value is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    if args.mean_file is None and args.mean is not None:
        cmd += ["--mean", args.mean]
    cmd += [
        "--iterations",
        str(args.iterations),
        "--warmup",
        str(args.warmup),
        "--seed",
        str(args.seed),
        "--style",
        args.style,
        "--rate",
        f"{args.rate:g}",
        "--idle",
        f"{args.idle:g}",
        "--method",
        args.method,
    ]
    return cmd + (["--whole-net"] if args.whole_net else []) + (["--streamline"] if args.streamline else [])


class _Progress:
    """A rich progress bar over the phases and iterations on stderr (plain phase lines off a TTY)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.bar.add_task("", total=total)
        self.bar.start()

    def phase(self, text: str) -> None:
        if not self.console.is_terminal:
            logging.getLogger("streamline_bridge").info(f"streamline-bridge profile: {text}")
        self.bar.update(self.task, description=text)

    def step(self) -> None:
        self.bar.advance(self.task)

    def close(self) -> None:
        self.bar.stop()


def _idle(seconds: float, check: Callable[[], None]) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
        check()


def measure(runner: Any, args: argparse.Namespace, sampler: Any, t: list[int], progress: _Progress) -> None:
    """Idle, warm-up, the annotated iterations, idle; appends t1..t3 (docs/run-folder.md) to ``t``."""
    from annotate import now
    from streamline_bridge.commands.method import isolation_phase

    check = sampler.check
    progress.phase(f"idle before ({args.idle:g} s)")
    _idle(args.idle, check)
    t.append(now())
    progress.phase(f"warm-up ({args.warmup})")
    for _ in range(args.warmup):
        runner.warm_up(1, layer_by_layer=not args.whole_net)
        progress.step()
    progress.phase("whole net" if args.whole_net else "layer by layer")
    forward = runner.forward_whole if args.whole_net else runner.forward_layers
    for _ in range(args.iterations):
        forward()
        check()
        progress.step()
    if not args.whole_net and args.method != "sequence":
        isolation_phase(runner.isolate, Path(args.output), args.method, args.style, progress.phase)
    t.append(now())
    progress.phase(f"idle after ({args.idle:g} s)")
    _idle(args.idle, check)
    t.append(now())


def write_outputs(run_dir: Path, style: str, method: str = "sequence") -> tuple[Any, list[Path]]:
    """The energy table of the run folder (by ``method``), printed to stdout, and every renderer's run file
    written into it (and, for ``--method both``, the side-by-side comparison)."""
    from streamline_bridge import board, ingest
    from streamline_bridge.commands.method import apply_method, print_side_by_side, write_side_by_side
    from streamline_bridge.energy import energy_table
    from streamline_bridge.energy.isolate import without_isolation
    from streamline_bridge.report import emit, registry, table

    rec = ingest.read(run_dir)
    result = energy_table(without_isolation(rec), style=style)
    side = apply_method(result, rec, method)
    result.meta["board"] = board.of_recording(rec)
    table.render(result)
    if side is not None:
        print_side_by_side(side)
    written: list[Path] = []
    for renderer in registry():
        if renderer.run_file and renderer.renders(result):
            written += emit(renderer, result, rec, run_dir / renderer.run_file)
    if side is not None:
        written.append(write_side_by_side(side, run_dir))
    return rec, written


def run(args: argparse.Namespace) -> int:
    import annotate
    from streamline_bridge.commands.record import MARKERS_FILE, finish_run, reserve_sampler_cpu, start_run
    from streamline_bridge.ingest.annotation_power import describe
    from streamline_bridge.nets import imagenet
    from streamline_bridge.profiling import framework

    _check_args(args)
    labels = imagenet.read_labels(args.labels) if args.labels else None
    reserve_sampler_cpu(args)  # before the framework: OpenBLAS and OpenMP size their threads from the CPUs left
    net = framework(args.framework).load(args)
    run_dir, manifest, sampler = start_run(args, _command(args))
    annotate.setup(file=str(run_dir / MARKERS_FILE))  # before the runner (in measure): it names its channels at once
    manifest["profile"] = {
        "framework": args.framework,
        "net": net.name,
        "model": net.model,
        "weights": args.weights,
        "image": args.image,
        "input": net.input_shape,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "style": args.style,
        "whole_net": args.whole_net,
        "seed": args.seed,
        **net.info,
    }
    progress = _Progress(args.warmup + args.iterations)
    t, interrupted, sampler_error, warnings = [annotate.now()], False, None, []
    try:
        measure(net.runner(args.style), args, sampler, t, progress)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        progress.close()
        try:
            warnings = net.finish(run_dir)  # also after an interruption: what was measured is kept
        finally:
            annotate.shutdown()
            manifest["profile"]["layers"] = net.layer_texts() if net.runner_ is not None else []
            sampler_error = finish_run(
                run_dir,
                manifest,
                sampler,
                t,
                sampler_error,
                exit_code=130 if interrupted else 0,
                interrupted=interrupted,
            )
    if sampler_error:
        from streamline_bridge.errors import InputError

        raise InputError(run_dir, f"power sampling failed, the run is incomplete: {sampler_error}")

    rec, written = write_outputs(run_dir, args.style, "sequence" if args.whole_net else args.method)
    log = logging.getLogger("streamline_bridge")  # diagnostics: -q silences them
    for warning in warnings:
        log.warning(f"warning: {warning}")
    prob = net.probabilities()
    if labels is not None and prob is not None:  # a result: on stdout with the table
        print("top-5 classes" + (" (random weights: meaningless)" if net.random_weights else "") + ":")
        for index, p, label in imagenet.top_k(prob, labels):
            print(f"  {p:7.4f}  {index:4d}  {label}")
    if net.random_weights:
        log.info(f"note: random weights (seed {args.seed}): time and energy are real, the classes are meaningless")
    if args.image is None:
        log.info(f"note: synthetic input image (seed {args.seed}); --image IMG to classify a real one")
    in_power = set(rec.power["rail"].astype(str))
    log.info(f"power: {describe({n: i for n, i in rec.meta.rails.items() if n in in_power})}")
    if sampler.info.get("estimated"):  # the table has said ESTIMATED; here, why
        log.info(f"note: no power sensor found, the '{sampler.info['source']}' source models power from CPU use")
    log.info(f"wrote {run_dir}: markers, power, manifest, {', '.join(dict.fromkeys(p.name for p in written))}")
    return 0
