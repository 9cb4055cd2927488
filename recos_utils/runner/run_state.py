"""What ``recos-book run`` remembers between runs: which chapter ran, how, and on what.

A chapter is executed again only when something it depends on changed (as jupyter-cache
does for Jupyter Book): its notebook source, its parameters (mode, device, data root),
the contents of the data files it can read (by checksum), the ``recos_utils`` code, or the
installed versions of torch and torchvision. Otherwise its last executed notebook and its
results file are reused. The record of a chapter is written only after it finished, with
the checksum of its executed notebook, so a notebook left half-written by a killed run is
never taken for a finished one.

The state is one JSON file, ``OUT/run_state.json``::

    {"version": 1,
     "chapters": {"02_sign_confusion": {"fingerprint": "<sha256>", "mode": "quick",
                  "device": "cpu", "finished": "2026-12-03T17:40:02Z", "seconds": 61.2,
                  "executed_sha256": "<sha256 of OUT/executed/02_sign_confusion.ipynb>",
                  "results_sha256": "<sha256 of OUT/results/02_sign_confusion.json>"}},
     "build": "<sha256 of the staged site of the last successful build>"}

It is written atomically; an unreadable or foreign file is ignored with a warning (every
chapter then runs again) and replaced.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from recos_utils.core.fingerprints import code_hash, file_sha256

__all__ = ["STATE_FILE", "RunStateWarning", "load", "save", "fingerprint", "data_checksum",
           "file_sha256", "is_complete", "results_intact", "record", "tree_sha256"]

STATE_FILE = "run_state.json"
_VERSION = 1


class RunStateWarning(UserWarning):
    """The saved run state could not be read; the chapters run again."""


def tree_sha256(folder: Path, skip: tuple[str, ...] = ("_build",)) -> str:
    """SHA-256 over every file of ``folder`` (relative path and content), in sorted order,
    leaving out the top-level folders named in ``skip``."""
    folder, h = Path(folder), hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] not in skip:
            h.update(str(rel).encode() + b"\0" + file_sha256(p).encode())
    return h.hexdigest()


def data_checksum(data_dir: str | None = None) -> str:
    """SHA-256 of every dataset file the loader can find (``recos_utils.core.data``'s search
    folders for MNIST and Fashion-MNIST), by name and content; files that are absent count
    as absent, so adding or changing one changes the checksum."""
    from recos_utils.core.data import DATASETS, data_roots

    h = hashlib.sha256()
    for name, info in DATASETS.items():
        folders = [r / info["folder"] / "raw" for r in data_roots(data_dir)]
        for folder in folders + [Path(s) for s in info["system"]]:
            if folder.is_dir():
                for p in sorted(folder.iterdir()):
                    if p.is_file() and "ubyte" in p.name:
                        h.update(f"{name}:{p}".encode() + file_sha256(p).encode())
    return h.hexdigest()


def fingerprint(notebook: Path, params: dict, data: str) -> str:
    """The hash of everything a chapter's execution depends on: the notebook's bytes, its
    parameters, ``data`` (:func:`data_checksum`), the ``recos_utils`` sources and the
    torch / torchvision versions."""
    versions = {}
    for pkg in ("torch", "torchvision"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    blob = json.dumps({"notebook": file_sha256(notebook), "params": params, "data": data,
                       "code": code_hash(), "versions": versions}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load(out_dir: Path) -> dict:
    """The saved state of ``out_dir`` (empty if none); a corrupt file is ignored with a
    :class:`RunStateWarning`."""
    path = Path(out_dir) / STATE_FILE
    empty = {"version": _VERSION, "chapters": {}, "build": None}
    if not path.is_file():
        return empty
    try:
        state = json.loads(path.read_text())
        if state.get("version") != _VERSION or not isinstance(state.get("chapters"), dict):
            raise ValueError("not a run state of this version")
        return state
    except (ValueError, OSError, AttributeError) as e:
        warnings.warn(f"the saved run state {path} is unreadable ({e}); it is ignored and "
                      f"every chapter runs again", RunStateWarning, stacklevel=2)
        return empty


def save(out_dir: Path, state: dict) -> None:
    """Write the state atomically (a temporary file renamed into place)."""
    path = Path(out_dir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=STATE_FILE + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def record(state: dict, stem: str, executed: Path, *, fingerprint: str, mode: str,
           device: str, seconds: float, results: Path | None = None) -> dict:
    """Note that ``stem`` finished: its fingerprint, mode, device, time and the checksums of
    its executed notebook and (if it wrote one) its results file. Returns the record."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rec = {"fingerprint": fingerprint, "mode": mode, "device": device, "finished": now,
           "seconds": round(seconds, 1), "executed_sha256": file_sha256(executed),
           "results_sha256": file_sha256(results) if results and results.is_file() else None}
    state["chapters"][stem] = rec
    return rec


def is_complete(state: dict, stem: str, executed: Path) -> bool:
    """Whether ``executed`` is the finished notebook of ``stem``'s last recorded run (a
    notebook a killed run left behind has no record, or another checksum)."""
    rec = state["chapters"].get(stem)
    return bool(rec) and executed.is_file() and file_sha256(executed) == rec["executed_sha256"]


def results_intact(rec: dict, results: Path) -> bool:
    """Whether the results file the run wrote (if any) is still the one it wrote."""
    want = rec.get("results_sha256")
    return want is None or (results.is_file() and file_sha256(results) == want)
