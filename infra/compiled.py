"""The bid path compiled to C by mypyc, beside its Python source.

Every bid runs through the modules below, and interpreted they cost most of a request's CPU:
object churn and attribute lookups spread thin over dozens of functions, with no single hot
spot left to rewrite. mypyc (part of mypy, which already type-checks this code) turns the
same annotated source into C extension modules; Python's import prefers an extension module
to the ``.py`` beside it, so a checkout runs compiled once ``make`` has built them, and
interpreted, the same behaviour at lower speed, wherever they are missing.

Value classes on the bid path are written for mypyc, not as frozen dataclasses: mypyc leaves
the ``__init__`` a dataclass generates interpreted, and a frozen one sets each field through
``object.__setattr__`` (about 400 ns for three fields, against 30 ns compiled). So such a class
is ``@dataclass(slots=True, init=False, unsafe_hash=True)`` with ``Final`` fields and its own
``__init__``: mypy rejects any later assignment, mypyc makes the attributes read-only, and the
dataclass still gives equality, hashing (safe: nothing can change), ``repr`` and ``replace``.

Module constants on the bid path are ``Final``: compiled code then reads them from C statics
(or inlines them) instead of looking each up in the module's dict. Not a tuple of floats,
though: mypyc 2.4 leaves such a ``Final`` unset, and every read raises ``NameError``.

A compiled module older than its source would run old code, so ``build`` compiles again
whenever any source is newer than the extension, ``dsp serve`` warns, and the test suite
refuses to start.

    python -m infra.compiled build     # compile when any source changed (what make runs)
    python -m infra.compiled status    # compiled, stale or interpreted, per module
    python -m infra.compiled clean     # back to interpreted
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What one bid request runs, from bytes in to bytes out, and what the event loop does for it.
HOT_MODULES = (
    "infra/keys.py",
    "infra/redis_pipe.py",
    "dmp/ids.py",
    "dmp/profile_tags.py",
    "dmp/profile.py",
    "dmp/profile_lookup.py",
    "dmp/scene_codec.py",
    "dsp/metrics.py",
    "dsp/campaigns/dimensions.py",
    "dsp/campaigns/index.py",
    "dsp/budget/accounts.py",
    "dsp/budget/keeper.py",
    "dsp/tracking/links.py",
    "dsp/events/schema.py",
    "dsp/events/tags.py",
    "dsp/events/bid_log.py",
    "dsp/bidder/openrtb.py",
    "dsp/bidder/decide.py",
    "dsp/bidder/markup.py",
    "dsp/bidder/native.py",
    "dsp/bidder/response.py",
    "dsp/bidder/handler.py",
    "dsp/bidder/front.py",
    "dsp/bidder/cluster_lookups.py",  # a RedisPipe: a compiled class has compiled subclasses
)
# mypyc puts the code the modules share in one library; named inside a package, it is found
# through the editable install like the modules themselves (a top-level name would not be).
GROUP = "dsp._bidpath"
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@dataclass(frozen=True)
class ModuleState:
    source: str
    state: str  # "compiled", "stale" (source newer than the extension) or "interpreted"


def extension_of(source: str, root: Path = ROOT) -> Path:
    return root / (source.removesuffix(".py") + _SUFFIX)


def shared_library(root: Path = ROOT) -> Path:
    package, name = GROUP.rsplit(".", 1)
    return root / package.replace(".", "/") / f"{name}__mypyc{_SUFFIX}"


def built_files(root: Path = ROOT) -> list[Path]:
    """Every file a build leaves: one extension per module and the shared library."""
    return [*(extension_of(source, root) for source in HOT_MODULES), shared_library(root)]


def states(root: Path = ROOT, modules: tuple[str, ...] = HOT_MODULES) -> list[ModuleState]:
    result = []
    for source in modules:
        extension = extension_of(source, root)
        if not extension.exists():
            result.append(ModuleState(source, "interpreted"))
        elif (root / source).stat().st_mtime > extension.stat().st_mtime:
            result.append(ModuleState(source, "stale"))
        else:
            result.append(ModuleState(source, "compiled"))
    return result


def stale(root: Path = ROOT, modules: tuple[str, ...] = HOT_MODULES) -> list[str]:
    """Sources newer than their compiled module: the process would run old code."""
    return [module.source for module in states(root, modules) if module.state == "stale"]


def summary(root: Path = ROOT, modules: tuple[str, ...] = HOT_MODULES) -> str:
    """One word for logs and benchmarks: compiled, interpreted, partly or stale."""
    found = {module.state for module in states(root, modules)}
    if "stale" in found:
        return "stale"
    if found == {"compiled"}:
        return "compiled"
    return "interpreted" if found == {"interpreted"} else "partly"


def clean() -> int:
    removed = 0
    for path in built_files():
        if path.exists():
            path.unlink()
            removed += 1
    return removed


def build(force: bool = False) -> bool:
    """Compile the hot modules in place when any is missing or stale (or ``force``).
    True when something was built."""
    if not force and summary() == "compiled" and shared_library().exists():
        return False
    # Imported here: mypy is a development dependency, and a deployed bidder never builds.
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    started = time.monotonic()
    os.chdir(ROOT)  # mypyc reads the mypy settings in pyproject.toml; paths are relative
    clean()
    extensions = mypycify(
        list(HOT_MODULES), opt_level="3", group_name=GROUP, target_dir="build/mypyc"
    )
    setup(
        name="rtb-dsp-bidpath",
        ext_modules=extensions,
        script_args=["--quiet", "build_ext", "--inplace", "--build-temp", "build/mypyc-temp"],
    )
    # setuptools copies an extension it found up to date with its old time (a module's
    # small shim, when only the shared library changed): all of them are this build's.
    for path in built_files():
        path.touch()
    print(
        f"compiled {len(HOT_MODULES)} bid path modules with mypyc "
        f"in {time.monotonic() - started:.0f} s"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.compiled",
        description="Compile the bid path's modules to C with mypyc, in place beside their "
        "sources, or show which run compiled. Interpreted modules behave the same, slower.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser(
        "build", help="compile when any module is missing or older than its source"
    )
    build_parser.add_argument("--force", action="store_true", help="compile even when fresh")
    commands.add_parser("status", help="compiled, stale or interpreted, per module")
    commands.add_parser("clean", help="remove the compiled modules (run interpreted)")
    args = parser.parse_args(argv)
    if args.command == "build":
        if not build(force=args.force):
            print(f"bid path compiled and up to date ({len(HOT_MODULES)} modules)")
        return 0
    if args.command == "clean":
        print(f"removed {clean()} compiled files")
        return 0
    for module in states():
        print(f"{module.state:12s} {module.source}")
    print(f"bid path: {summary()}")
    return 1 if summary() == "stale" else 0


if __name__ == "__main__":
    sys.exit(main())
