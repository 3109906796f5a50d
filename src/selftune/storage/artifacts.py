"""Checkpoints on disk: atomic, checksummed, never unpickled.

Layout under the root (a directory beside an SQLite file, or a path on a file system every worker mounts)::

    <root>/study-<id>/trial-<number>/step-<step>-<time>-<token>/
        manifest.json    {"kind": "torch" | "bytes" | "file" | "dir", "step", "files": {path: sha256}, "size"}
        data/...         the payload

A checkpoint is written into a temporary directory and renamed into place, so a reader sees a whole
checkpoint or none; a worker killed mid-write leaves only a ``.tmp-*`` directory, which readers ignore and
the next save of that trial removes. Every file's SHA-256 is checked on load: a corrupt or truncated
checkpoint raises :class:`~selftune.exceptions.CheckpointError`, it is never loaded silently. PyTorch
payloads are read with ``torch.load(weights_only=True)``; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle  # for its exception type only: nothing is unpickled
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from selftune.exceptions import CheckpointError, InvalidValueError

__all__ = ["ArtifactStore", "Checkpoint"]

_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Checkpoint:
    """A stored checkpoint: where it is and what it holds (read :meth:`ArtifactStore.load` to get it)."""

    trial: int
    step: int
    kind: str
    path: Path
    size: int
    #: what the study recorded with it (the parameters and schedule its weights were trained with)
    meta: Mapping[str, Any] = field(default_factory=dict)


class ArtifactStore:
    """Checkpoints of one study's trials under ``root``; ``keep`` newest per trial are kept (at least 1)."""

    def __init__(self, root: str | os.PathLike[str], study_id: int, *, keep: int = 2) -> None:
        if keep < 1:
            raise InvalidValueError(f"`keep` must be an integer >= 1, got {keep!r}")
        self.root = Path(root)
        self.study_dir = self.root / f"study-{int(study_id)}"
        self.keep = keep

    def _trial_dir(self, number: int) -> Path:
        return self.study_dir / f"trial-{int(number)}"

    # -- writing ----------------------------------------------------------------------------------------
    def save(self, number: int, step: int, payload: Any, meta: Mapping[str, Any] | None = None) -> Checkpoint:
        """Store ``payload`` for trial ``number`` at ``step``.

        ``payload``: a mapping (a PyTorch ``state_dict`` or a dict of them and plain values: saved with
        ``torch.save``), ``bytes``, or a path to a file or a directory (copied). ``meta`` (JSON) is kept in
        the manifest: the study writes the parameters the weights were trained with, so an exploit that
        copies the checkpoint knows their schedule exactly.
        """
        trial_dir = self._trial_dir(number)
        trial_dir.mkdir(parents=True, exist_ok=True)
        tmp = trial_dir / f".tmp-{uuid.uuid4().hex}"
        data = tmp / "data"
        tmp.mkdir()
        try:
            kind = self._write_payload(payload, data)
            files = {
                str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            size = sum((tmp / f).stat().st_size for f in files)
            manifest = {"kind": kind, "trial": int(number), "step": int(step), "files": files, "size": size}
            if meta:
                manifest["meta"] = dict(meta)
            (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
            for f in [*files, "manifest.json"]:
                with (tmp / f).open("rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            final = trial_dir / f"step-{int(step):012d}-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
            os.replace(tmp, final)
            _fsync_dir(trial_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(trial_dir, keep_also=final)
        return Checkpoint(int(number), int(step), kind, final, size)

    @staticmethod
    def _write_payload(payload: Any, data: Path) -> str:
        if isinstance(payload, bytes | bytearray | memoryview):
            data.write_bytes(bytes(payload))
            return "bytes"
        if isinstance(payload, str | os.PathLike):
            src = Path(payload)
            if src.is_dir():
                shutil.copytree(src, data)
                return "dir"
            if src.is_file():
                shutil.copyfile(src, data)
                return "file"
            raise InvalidValueError(f"checkpoint path {str(src)!r} is neither a file nor a directory")
        if isinstance(payload, Mapping):
            from selftune._imports import require

            torch = require("torch", "torch")
            buf = io.BytesIO()
            torch.save(dict(payload), buf)
            data.write_bytes(buf.getvalue())
            return "torch"
        raise InvalidValueError(
            "a checkpoint must be a dict (e.g. {'model': model.state_dict(), 'epoch': 3}), bytes, or a path to a "
            f"file or directory; got {type(payload).__name__}"
        )

    def _prune(self, trial_dir: Path, keep_also: Path) -> None:
        """Remove leftovers of interrupted saves and exploits, and checkpoints beyond the newest ``keep``."""
        for pattern in (".tmp-*", ".stage-*"):
            for p in trial_dir.glob(pattern):
                if p != keep_also:
                    shutil.rmtree(p, ignore_errors=True)
        done = self._complete(trial_dir)
        for old in done[: max(0, len(done) - self.keep)]:
            if old != keep_also:
                shutil.rmtree(old, ignore_errors=True)

    # -- exploits (population based training) ------------------------------------------------------------
    def stage_copy(self, source: int, dest: int, min_step: int, *, attempts: int = 5) -> tuple[Path, Checkpoint]:
        """Copy trial ``source``'s newest checkpoint (at a step ``>= min_step``) into trial ``dest``'s directory,
        staged: readers do not see it until :meth:`commit_copy`. Returns the staged path and the source's checkpoint.

        The copy is verified against the source's checksums. If the source prunes the checkpoint while it is
        being copied (it saved newer ones), the newest is copied instead.
        """
        dest_dir = self._trial_dir(dest)
        dest_dir.mkdir(parents=True, exist_ok=True)
        problem = "it has no checkpoint"
        for _ in range(attempts):
            found = self.latest(source)
            if found is None:
                break
            if found.step < min_step:
                problem = f"its newest checkpoint is at step {found.step}"
                break
            staged = dest_dir / f".stage-{uuid.uuid4().hex}"
            try:
                shutil.copytree(found.path, staged)
                self.verify(replace(found, path=staged))
                _fsync_dir(staged)
                return staged, found
            except (OSError, shutil.Error, CheckpointError):  # pruned or rewritten under us: take the newest
                shutil.rmtree(staged, ignore_errors=True)
                problem = "its checkpoints kept changing while being copied"
        raise CheckpointError(
            f"trial {dest} cannot take over trial {source}'s checkpoint at step >= {min_step}: {problem} "
            "(population based training needs trial.save_checkpoint(...) before the trial pauses)"
        )

    def commit_copy(self, dest: int, staged: Path, step: int) -> Checkpoint:
        """Make a staged copy trial ``dest``'s checkpoint at ``step`` and drop its older ones (they hold the
        weights it no longer trains)."""
        trial_dir = self._trial_dir(dest)
        final = trial_dir / f"step-{int(step):012d}-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        os.replace(staged, final)
        _fsync_dir(trial_dir)
        for old in self._complete(trial_dir):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return self._describe(dest, final)

    def discard(self, staged: Path) -> None:
        """Remove a staged copy that will not be used."""
        shutil.rmtree(staged, ignore_errors=True)

    # -- reading ----------------------------------------------------------------------------------------
    @staticmethod
    def _complete(trial_dir: Path) -> list[Path]:
        """Finished checkpoint directories of a trial, oldest first (by step, then by name)."""
        if not trial_dir.is_dir():
            return []
        return sorted(p for p in trial_dir.glob("step-*") if (p / "manifest.json").exists())

    def latest(self, number: int) -> Checkpoint | None:
        """The newest checkpoint of trial ``number`` (highest step), or None."""
        done = self._complete(self._trial_dir(number))
        if not done:
            return None
        return self._describe(number, done[-1])

    def _describe(self, number: int, path: Path) -> Checkpoint:
        manifest = self._manifest(number, path)
        return Checkpoint(
            int(number),
            int(manifest["step"]),
            str(manifest["kind"]),
            path,
            int(manifest["size"]),
            dict(manifest.get("meta") or {}),
        )

    @staticmethod
    def _manifest(number: int, path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
                raise ValueError("not a manifest")
            return manifest
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint of trial {number} at {path}: unreadable manifest ({exc})") from None

    def verify(self, checkpoint: Checkpoint) -> None:
        """Check every file against its recorded SHA-256; raise :class:`CheckpointError` naming the first bad one."""
        manifest = self._manifest(checkpoint.trial, checkpoint.path)
        for rel, digest in manifest["files"].items():
            p = checkpoint.path / rel
            if not p.is_file():
                raise CheckpointError(
                    f"checkpoint of trial {checkpoint.trial} at step {checkpoint.step} is incomplete: {rel} is missing"
                )
            got = _sha256(p)
            if got != digest:
                raise CheckpointError(
                    f"checkpoint of trial {checkpoint.trial} at step {checkpoint.step} is corrupt: {rel} has "
                    f"SHA-256 {got[:12]}…, expected {digest[:12]}… (truncated or overwritten); it was not loaded"
                )

    def load(self, checkpoint: Checkpoint) -> Any:
        """The payload, verified: a dict for PyTorch payloads (``weights_only=True``), ``bytes``, or the
        :class:`~pathlib.Path` of the stored file or directory (read it, do not write to it)."""
        self.verify(checkpoint)
        data = checkpoint.path / "data"
        if checkpoint.kind == "bytes":
            return data.read_bytes()
        if checkpoint.kind in ("file", "dir"):
            return data
        if checkpoint.kind == "torch":
            from selftune._imports import require

            torch = require("torch", "torch")
            try:
                return torch.load(io.BytesIO(data.read_bytes()), weights_only=True, map_location="cpu")
            except pickle.UnpicklingError as exc:
                raise CheckpointError(
                    f"checkpoint of trial {checkpoint.trial} at step {checkpoint.step} holds objects that only "
                    "pickle could rebuild; checkpoints load with weights_only=True (tensors, numbers, strings, "
                    f"lists, dicts): {str(exc).splitlines()[0]}"
                ) from None
        raise CheckpointError(f"checkpoint of trial {checkpoint.trial}: unknown kind {checkpoint.kind!r}")
