"""``citizen bench``: the benchmarks of bench/, run from the checkout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli._common import Commands


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``bench/<name>.py`` from the checkout (benchmarks are not installed with the package)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    folder = root / "bench"
    if not folder.is_dir():
        print("citizen bench: run from a checkout (bench/ is not installed)", file=sys.stderr)
        return 2
    available = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem != "apps")
    names = available if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"citizen bench: unknown benchmark {unknown[0]!r}; one of: all, {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for name in names:
        failed |= subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=root, check=False).returncode  # noqa: S603
    return 1 if failed else 0


def _bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a file of bench/ without .py, or 'all'")


COMMANDS: Commands = {
    "bench": ("run a benchmark from bench/ (JSON lines on stdout)", cmd_bench, _bench_args),
}
