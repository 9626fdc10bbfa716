"""Damaged input campaign: 20,000 seeded mutations of real inputs of every reader, counted by outcome.

Seeds and mutations: ``tests/fuzz_support.py`` (captures, marker logs, power logs, run folders,
exports, tegrastats logs; bytes flipped, cut, inserted, duplicated, zeros appended, text tokens and
JSON values replaced). Each mutated input is read as ``inspect`` reads it. The goal: 0 internal
errors. ``python -m bench fuzz`` runs the full campaign (``--quick``: 2,000); ``python -m
bench.bench_fuzz [N] [SEED]`` prints the counts per reader and the first crashers.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

try:
    from bench.run import Result
except ModuleNotFoundError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.run import Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fuzz_support as fz

CASES, QUICK_CASES, SEED = 20_000, 2_000, 14
SLOW_S = 2.0  # a case taking longer than this is counted as slow (a reader doing per-byte work)


def campaign(n: int, seed: int = SEED) -> tuple[Counter, Counter, list[str], float]:
    """Run ``n`` cases; (outcome counts, (seed name, outcome) counts, crashers and slow cases, slowest s)."""
    rng = random.Random(seed)
    shared = Path(__file__).resolve().parents[2] / "shared"
    counts: Counter = Counter()
    per_seed: Counter = Counter()
    crashers: list[str] = []
    slowest = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "seeds"
        base.mkdir()
        seeds = fz.build_seeds(base, shared if (shared / "vectors").is_dir() else None)
        for i in range(n):
            s = seeds[i % len(seeds)]
            target = rng.choice(s.targets)
            muts = [(rng.choice(fz.OPS), rng.random(), rng.randrange(1 << 16)) for _ in range(rng.randint(1, 3))]
            path = fz.materialise(s, target, muts, Path(tmp) / f"case{s.path.suffix}")
            t0 = time.perf_counter()
            what, detail = fz.outcome(path)
            dt = time.perf_counter() - t0
            slowest = max(slowest, dt)
            if dt > SLOW_S:
                counts["slow"] += 1
                crashers.append(f"slow ({dt:.1f} s): {s.name} {target or '-'} {muts}")
            counts[what] += 1
            per_seed[s.name, what] += 1
            if what == "internal-error":
                crashers.append(f"{s.name} {target or '-'} {muts}: {detail}")
    return counts, per_seed, crashers, slowest


def run(quick: bool) -> list[Result]:
    n = QUICK_CASES if quick else CASES
    counts, _, crashers, slowest = campaign(n)
    out = [
        Result(
            "fuzz",
            f"{what} of {n} mutated inputs",
            counts[what],
            "cases",
            goal="0" if what == "internal-error" else "",
            ok=(counts[what] == 0) if what == "internal-error" else None,
        )
        for what in fz.OUTCOMES
    ]
    out.append(Result("fuzz", f"cases over {SLOW_S:g} s", counts["slow"], "cases", goal="0", ok=counts["slow"] == 0))
    out.append(Result("fuzz", "slowest case", slowest, "s"))
    for c in crashers[:10]:
        print("crasher:", c, file=sys.stderr)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else CASES
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    t0 = time.perf_counter()
    counts, per_seed, crashers, slowest = campaign(n, seed)
    print(f"{n} mutated inputs (seed {seed}) in {time.perf_counter() - t0:.0f} s; slowest case {slowest:.2f} s")
    print("  ".join(f"{k}: {counts[k]}" for k in (*fz.OUTCOMES, "slow")))
    for name in sorted({s for s, _ in per_seed}):
        print(f"  {name:40s}", "  ".join(f"{k}={per_seed[name, k]}" for k in fz.OUTCOMES if per_seed[name, k]))
    for c in crashers[:40]:
        print("crasher:", c)


if __name__ == "__main__":
    main()
