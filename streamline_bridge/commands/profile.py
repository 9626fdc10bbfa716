"""Run a network layer by layer in this process with layer markers and the power sampler, then
print the per-layer time and energy table.

    streamline-bridge profile caffe -o runs/squeezenet
    streamline-bridge profile caffe --model deploy.prototxt --weights model.caffemodel \\
        --image cat.jpg --labels synset_words.txt -o runs/cat

The sampler runs in its own process from before an idle phase to after another one (as in
``record``); between them the net runs ``--warmup`` forwards without markers, then
``--iterations`` forwards layer by layer (``annotate.frameworks.caffe``), every layer in its own
interval, into RUN_DIR's marker log. RUN_DIR is a run folder (docs/run-folder.md; ``report
RUN_DIR`` reads it again) that also gets the table (``table.csv`` + ``table.meta.json``,
``table.json``), ``plot.png`` and ``trace.json``.

Input as Caffe's ImageNet models expect it: BGR, 0-255, minus the per-channel mean (default
104,117,123), resized to the input (bilinear, no antialiasing). Without ``--model``: SqueezeNet
v1.1 at 224x224 (``streamline_bridge.nets.squeezenet``) with seeded random weights unless
``--weights`` is given (time and energy do not depend on weight values; classes do). Without
``--image``: a deterministic synthetic image.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HELP = "run a network layer by layer with markers and the power sampler; print per-layer energy"
FRAMEWORKS = ("caffe",)
BUILTIN = "SqueezeNet v1.1 (streamline_bridge.nets.squeezenet, 224x224)"
OUTPUTS = ("table.csv", "table.json", "plot.png", "trace.json")


def configure(parser: argparse.ArgumentParser) -> None:
    from streamline_bridge.commands.method import add_method_argument
    from streamline_bridge.commands.record import add_sampler_arguments

    parser.add_argument("framework", choices=FRAMEWORKS, help="the framework that runs the net")
    parser.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder to create")
    parser.add_argument("--model", metavar="PROTOTXT", help="net definition (default: built-in SqueezeNet v1.1)")
    parser.add_argument("--weights", metavar="CAFFEMODEL", help="trained weights (default: seeded random weights)")
    parser.add_argument("--image", metavar="IMG", help="input image (default: a synthetic one)")
    parser.add_argument("--labels", metavar="SYNSET", help="class names (synset_words.txt): print the top-5 classes")
    mean = parser.add_mutually_exclusive_group()
    mean.add_argument("--mean", default="104,117,123", metavar="B,G,R", help="per-channel mean (default 104,117,123)")
    mean.add_argument("--mean-file", metavar="NPY", help="mean image, 3 x H x W BGR (ilsvrc_2012_mean.npy)")
    parser.add_argument("--size", type=int, metavar="PX",
                        help="input size: reshape the net to 1x3xPXxPX (default: the model's, batch 1; built-in 224)")
    parser.add_argument("--iterations", type=int, default=20, metavar="N", help="measured forwards (default 20)")
    parser.add_argument("--warmup", type=int, default=2, metavar="K", help="forwards before, without markers (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and synthetic image (default 0)")
    parser.add_argument("--style", choices=("channels", "markers"), default="channels",
                        help="layer annotations: channel texts (default) or bookmarks (docs/energy-table.md)")
    parser.add_argument("--whole-net", action="store_true",
                        help="one interval per forward (the whole net in one call) instead of one per layer")
    add_sampler_arguments(parser)
    add_method_argument(parser)


def import_caffe() -> Any:
    """pycaffe in CPU mode, quiet; InputError saying how to build it when it cannot be imported."""
    from streamline_bridge.errors import InputError

    os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe's start-up log lines, before glog starts
    try:
        import caffe
    except ImportError as exc:
        raise InputError(None, f"pycaffe cannot be imported ({exc}): build it with "
                               "'scripts/build-pycaffe.sh .venv/bin/python' (or run scripts/bootstrap.sh)") from None
    caffe.set_mode_cpu()
    return caffe


def _existing(path: str | None, what: str) -> str | None:
    from streamline_bridge.errors import InputError

    if path is not None and not Path(path).is_file():
        raise InputError(path, f"no such {what} file")
    return path


def _net_name(prototxt: str) -> str:
    """The prototxt's top-level ``name``, else its folder's name for a ``deploy.prototxt``, else its stem."""
    path = Path(prototxt)
    match = re.search(r'^name\s*:\s*"([^"]+)"', path.read_text(encoding="utf-8", errors="replace"), re.M)
    if match:
        return match.group(1)
    return path.resolve().parent.name if path.stem == "deploy" else path.stem


def load_net(caffe: Any, args: argparse.Namespace) -> tuple[Any, str]:
    """The ``caffe.Net`` to profile, reshaped to batch 1 (and ``--size``), and its name."""
    from annotate.frameworks.caffe import net_layers

    from streamline_bridge.errors import InputError
    from streamline_bridge.nets.squeezenet import squeezenet_v1_1

    weights = _existing(args.weights, "weights")
    if weights is None:
        caffe.set_random_seed(args.seed)
    if args.model is None:
        with tempfile.TemporaryDirectory() as tmp:
            prototxt = Path(tmp, "squeezenet_v1.1.prototxt")
            prototxt.write_text(squeezenet_v1_1(size=args.size or 224))
            net, name = caffe.Net(str(prototxt), caffe.TEST, weights=weights), "SqueezeNet_v1.1"
    else:
        net, name = caffe.Net(_existing(args.model, "model"), caffe.TEST, weights=weights), _net_name(args.model)
    if len(net.inputs) != 1 or len(net.blobs[net.inputs[0]].data.shape) != 4:
        raise InputError(args.model, "the net must have one 4-D input blob (N x C x H x W)")
    blob = net.blobs[net.inputs[0]]
    _, channels, height, width = blob.data.shape
    if channels != 3:
        raise InputError(args.model, f"the input has {channels} channels: an image input has 3")
    height, width = (args.size, args.size) if args.size else (height, width)
    blob.reshape(1, 3, height, width)
    net.reshape()
    if not net_layers(net):
        raise InputError(args.model, "the net has no layer to run")
    return net, name


def _mean(args: argparse.Namespace) -> Any:
    """The mean to subtract: ``--mean-file``'s 3 x H x W array, else ``--mean``'s three values."""
    import numpy as np

    from streamline_bridge.errors import InputError

    if args.mean_file:
        try:
            mean = np.load(args.mean_file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(args.mean_file, f"cannot read the mean array (a .npy file expected): {exc}") from None
        if mean.ndim != 3 or mean.shape[0] != 3:
            raise InputError(args.mean_file, f"the mean array has shape {mean.shape}: expected 3 x H x W (BGR)")
        return mean
    try:
        values = [float(v) for v in args.mean.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise InputError(None, f"--mean {args.mean!r}: expected three numbers B,G,R")
    return values


def set_input(net: Any, args: argparse.Namespace, mean: Any) -> None:
    """The preprocessed image (or the synthetic one) in the net's input blob."""
    from streamline_bridge.nets import imagenet

    blob = net.blobs[net.inputs[0]]
    height, width = blob.data.shape[2:]
    rgb = imagenet.load_image(args.image) if args.image else imagenet.synthetic_image(max(height, width), args.seed)
    blob.data[0] = imagenet.preprocess(rgb, height, width, mean)


def _check_args(args: argparse.Namespace) -> None:
    from streamline_bridge.errors import InputError

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


def _command(args: argparse.Namespace) -> list[str]:
    """The profile as the command line that would repeat it (the manifest's ``command``)."""
    cmd = ["streamline-bridge", "profile", args.framework, "-o", str(args.output)]
    for flag in ("model", "weights", "image", "labels", "mean_file", "size", "source", "sysfs_root", "sensor_model"):
        value = getattr(args, flag)
        if value is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    if args.mean_file is None:
        cmd += ["--mean", args.mean]
    cmd += ["--iterations", str(args.iterations), "--warmup", str(args.warmup), "--seed", str(args.seed),
            "--style", args.style, "--rate", f"{args.rate:g}", "--idle", f"{args.idle:g}", "--method", args.method]
    return cmd + (["--whole-net"] if args.whole_net else []) + (["--streamline"] if args.streamline else [])


class _Progress:
    """A rich progress bar over the phases and iterations on stderr (plain phase lines off a TTY)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=self.console, transient=True)
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
    if not args.whole_net:
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
    from annotate.frameworks.caffe import CaffeRunner

    from streamline_bridge.commands.record import MARKERS_FILE, finish_run, reserve_sampler_cpu, start_run
    from streamline_bridge.ingest.annotation_power import describe
    from streamline_bridge.nets import imagenet

    _check_args(args)
    mean = _mean(args)
    labels = imagenet.read_labels(args.labels) if args.labels else None
    reserve_sampler_cpu(args)  # before caffe: OpenBLAS sizes its threads from the CPUs left
    caffe = import_caffe()
    net, name = load_net(caffe, args)
    set_input(net, args, mean)
    run_dir, manifest, sampler = start_run(args, _command(args))
    annotate.setup(file=str(run_dir / MARKERS_FILE))  # before the runner: it names its channels at once
    runner = CaffeRunner(net, name, style=args.style)
    manifest["profile"] = {
        "framework": "caffe", "net": name, "model": args.model or BUILTIN, "weights": args.weights,
        "image": args.image, "input": list(net.blobs[net.inputs[0]].data.shape), "iterations": args.iterations,
        "warmup": args.warmup, "style": args.style, "whole_net": args.whole_net,
        "layers": [layer.text for _, _, layer in runner.layers], "seed": args.seed}
    progress = _Progress(args.warmup + args.iterations)
    t, interrupted, sampler_error = [annotate.now()], False, None
    try:
        measure(runner, args, sampler, t, progress)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        progress.close()
        annotate.shutdown()
        sampler_error = finish_run(run_dir, manifest, sampler, t, sampler_error,
                                   exit_code=130 if interrupted else 0, interrupted=interrupted)
    if sampler_error:
        from streamline_bridge.errors import InputError

        raise InputError(run_dir, f"power sampling failed, the run is incomplete: {sampler_error}")

    rec, written = write_outputs(run_dir, args.style, "sequence" if args.whole_net else args.method)
    log = logging.getLogger("streamline_bridge")  # diagnostics: -q silences them
    prob = net.blobs[net.outputs[-1]].data[0]
    if labels is not None:  # a result: on stdout with the table
        print("top-5 classes" + (" (random weights: meaningless)" if args.weights is None else "") + ":")
        for index, p, label in imagenet.top_k(prob, labels):
            print(f"  {p:7.4f}  {index:4d}  {label}")
    if args.weights is None:
        log.info(f"note: random weights (seed {args.seed}): time and energy are real, the classes are meaningless")
    if args.image is None:
        log.info(f"note: synthetic input image (seed {args.seed}); --image IMG to classify a real one")
    in_power = set(rec.power["rail"].astype(str))
    log.info(f"power: {describe({n: i for n, i in rec.meta.rails.items() if n in in_power})}")
    if sampler.info.get("estimated"):  # the table has said ESTIMATED; here, why
        log.info(f"note: no power sensor found, the '{sampler.info['source']}' source models power from CPU use")
    log.info(f"wrote {run_dir}: markers, power, manifest, {', '.join(dict.fromkeys(p.name for p in written))}")
    return 0
