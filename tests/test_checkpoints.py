"""Trial checkpoints: atomic, checksummed, PyTorch state dicts without pickle, files and directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import selftune
from selftune.exceptions import CheckpointError, InvalidValueError
from selftune.storage.artifacts import ArtifactStore


def test_bytes_file_and_directory_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "art", study_id=1)
    assert store.latest(0) is None
    store.save(0, 1, b"\x00state")
    assert store.load(store.latest(0)) == b"\x00state"  # type: ignore[arg-type]
    f = tmp_path / "weights.bin"
    f.write_bytes(os.urandom(1000))
    ck = store.save(0, 2, f)
    assert ck.kind == "file" and store.load(ck).read_bytes() == f.read_bytes()
    d = tmp_path / "run"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.txt").write_text("b")
    ck = store.save(0, 3, d)
    loaded = store.load(ck)
    assert (loaded / "a.txt").read_text() == "a" and (loaded / "sub" / "b.txt").read_text() == "b"
    assert store.latest(0).step == 3  # type: ignore[union-attr]


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, study_id=1, keep=2)
    for step in range(5):
        store.save(7, step, str(step).encode())
    kept = sorted(p.name.split("-")[1] for p in (tmp_path / "study-1" / "trial-7").iterdir())
    assert [int(k) for k in kept] == [3, 4]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_corrupt_checkpoints_are_refused(tmp_path: Path, damage: str) -> None:
    store = ArtifactStore(tmp_path, study_id=1)
    ck = store.save(0, 5, os.urandom(4096))
    data = ck.path / "data"
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[10] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "delete":
        data.unlink()
    else:
        (ck.path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="trial 0"):
        store.load(store.latest(0) if damage != "manifest" else ck)


def test_an_interrupted_save_is_invisible_and_cleaned(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, study_id=1)
    store.save(0, 1, b"good")
    leftover = tmp_path / "study-1" / "trial-0" / ".tmp-deadbeef"
    (leftover / "data").mkdir(parents=True)  # a worker killed mid-write
    assert store.load(store.latest(0)) == b"good"  # type: ignore[arg-type]
    store.save(0, 2, b"next")
    assert not leftover.exists()


def test_bad_payload(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, study_id=1)
    with pytest.raises(InvalidValueError, match="a checkpoint must be a dict"):
        store.save(0, 1, 3.5)
    with pytest.raises(InvalidValueError, match="neither a file nor a directory"):
        store.save(0, 1, tmp_path / "missing")
    assert store.latest(0) is None


def test_torch_state_dict_without_pickle(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 2)
    study = selftune.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask()
    trial.report(0.5, 4)
    trial.save_checkpoint({"model": model.state_dict(), "epoch": 4})
    loaded = trial.load_checkpoint()
    assert loaded["epoch"] == 4 and torch.equal(loaded["model"]["weight"], model.weight)
    assert study.artifacts == Path(f"{tmp_path / 's.db'}.artifacts")  # beside the database file
    # something that needs pickle is refused at load time (weights_only=True), never executed
    trial.save_checkpoint({"evil": _Evil()}, step=5)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        trial.load_checkpoint()


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pwned",))


def test_study_api_and_missing_directory(tmp_path: Path, pg_url: str) -> None:
    study = selftune.create_study(storage="memory")
    trial = study.ask()
    assert trial.load_checkpoint() is None
    trial.save_checkpoint(b"abc")
    assert trial.load_checkpoint() == b"abc"
    with pytest.raises(InvalidValueError, match="step"):
        trial.save_checkpoint(b"x", step=-1)
    pg = selftune.create_study(storage=pg_url)
    with pytest.raises(CheckpointError, match="artifacts="):
        pg.ask().save_checkpoint(b"x")
    shared = selftune.create_study("s", storage=pg_url, artifacts=tmp_path / "shared")
    t = shared.ask()
    t.save_checkpoint(b"y")
    assert shared.artifacts == tmp_path / "shared" and t.load_checkpoint() == b"y"
