"""The compiled bid path: which modules, and telling compiled, stale and interpreted apart."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from pathlib import Path

import pytest

from infra import compiled


def test_every_hot_module_is_a_source_file_of_the_project() -> None:
    for source in compiled.HOT_MODULES:
        assert (compiled.ROOT / source).is_file(), source


@pytest.mark.parametrize("source", compiled.HOT_MODULES)
def test_each_module_runs_as_its_state_says(source: str) -> None:
    # What `make compile` built is what a process imports, and only that.
    module = importlib.import_module(source.removesuffix(".py").replace("/", "."))
    (state,) = compiled.states(modules=(source,))
    assert state.state in ("compiled", "interpreted")  # stale would stop the session early
    # By its loader: a mypyc module's __file__ and __spec__ name its shared library's folder.
    loader = type(module.__loader__)
    if state.state == "compiled":
        assert loader is importlib.machinery.ExtensionFileLoader
    else:
        assert loader is importlib.machinery.SourceFileLoader
        assert module.__file__ == str(compiled.ROOT / source)


def test_a_source_newer_than_its_extension_is_stale(tmp_path: Path) -> None:
    modules = ("pkg/a.py", "pkg/b.py")
    (tmp_path / "pkg").mkdir()
    for source in modules:
        (tmp_path / source).write_text("x = 1\n")
    assert compiled.summary(tmp_path, modules) == "interpreted"

    for source in modules:
        extension = compiled.extension_of(source, tmp_path)
        extension.write_bytes(b"")
        os.utime(tmp_path / source, (1_000, 1_000))
        os.utime(extension, (2_000, 2_000))
    assert compiled.summary(tmp_path, modules) == "compiled"
    assert compiled.stale(tmp_path, modules) == []

    os.utime(tmp_path / "pkg/b.py", (3_000, 3_000))  # edited after the build
    assert compiled.stale(tmp_path, modules) == ["pkg/b.py"]
    assert compiled.summary(tmp_path, modules) == "stale"

    compiled.extension_of("pkg/a.py", tmp_path).unlink()
    compiled.extension_of("pkg/b.py", tmp_path).unlink()
    (tmp_path / "pkg/c.py").write_text("")
    extension = compiled.extension_of("pkg/c.py", tmp_path)
    extension.write_bytes(b"")
    assert compiled.summary(tmp_path, ("pkg/a.py", "pkg/c.py")) == "partly"


def test_status_lists_every_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert compiled.main(["status"]) == 0
    out = capsys.readouterr().out
    assert all(source in out for source in compiled.HOT_MODULES)
    assert f"bid path: {compiled.summary()}" in out
