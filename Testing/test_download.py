"""Model downloads and the cache, against a real HTTP server on 127.0.0.1.

Nothing here reaches the internet. Every failure case also checks that the cache holds
no partial file afterwards, because a half-written model that looks installed is the
worst outcome.
"""
from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import types
import urllib.error
import zipfile
from pathlib import Path

import pytest

from http_fixture import PROXY_VARIABLES, catalog_document, model_record, sha256, write_catalog
from segforge.catalog import (CATALOG_ENV, UNVERIFIED, cache, is_installed, load_catalog, model_dir,
                              model_path, nnunet_model_folder, verify)
from segforge.catalog import download as download_module
from segforge.catalog.download import download
from segforge.catalog.catalog import ModelEntry, parse_catalog
from segforge.errors import Cancelled, ModelError

REPO = Path(__file__).resolve().parent.parent
BODY = os.urandom(50_000)
#: BODY with its last byte changed (always a change, whatever random byte BODY ends with).
TAMPERED = BODY[:-1] + bytes([BODY[-1] ^ 0xFF])


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks, so a 50 kB test file gives many progress reports."""
    monkeypatch.setattr(download_module, "CHUNK_BYTES", 4096)


@pytest.fixture(autouse=True)
def _no_totalsegmentator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TotalSegmentator weights of this machine leak in: its folder is an empty temporary one."""
    monkeypatch.delenv(cache.TOTALSEG_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(cache.TOTALSEG_HOME_ENV, str(tmp_path / "no-totalsegmentator"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def entry_for(record: dict) -> ModelEntry:
    return parse_catalog(catalog_document([record]), "test-catalog.json")[0]


def cache_contents(home: Path) -> list[str]:
    """Every file and folder under the cache, relative, sorted (hidden ones included)."""
    root = cache.models_dir(home)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- success ------------------------------------------------------------------------

def test_download_reports_progress_and_installs_a_verified_file(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/w/liver.pt", BODY), BODY))
    assert not is_installed(entry, home)
    reports: list[tuple[float, str]] = []

    path = download(entry, home=home, progress=lambda f, m: reports.append((f, m)))

    assert path == model_dir("liver-test", home) / "liver.pt" == model_path(entry, home)
    assert path.read_bytes() == BODY
    fractions = [f for f, _ in reports]
    assert len(fractions) >= len(BODY) // 4096
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), fractions
    assert fractions[0] < 0.1 and fractions[-1] == 1.0
    assert any("Downloading liver-test" in m for _, m in reports)
    assert is_installed(entry, home) and verify(entry, home).ok
    assert cache_contents(home) == ["liver-test", "liver-test/.segforge-install.json",
                                    "liver-test/liver.pt"]


def test_installed_model_is_not_downloaded_again(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))
    download(entry, home=home)
    download(entry, home=home)
    assert http_server.requests["/liver.pt"] == 1
    download(entry, home=home, force=True)
    assert http_server.requests["/liver.pt"] == 2


def test_cache_folder_comes_from_segforge_home(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "elsewhere"))
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))
    path = download(entry)
    assert path == tmp_path / "elsewhere" / "models" / "liver-test" / "liver.pt"
    monkeypatch.delenv(cache.HOME_ENV)
    assert cache.cache_home() == Path.home() / ".segforge"


def test_builtin_model_needs_no_download(home):
    entry = load_catalog(extra=[]).get("vesselness-frangi")
    assert download(entry, home=home) is None
    assert is_installed(entry, home) and verify(entry, home).ok
    assert not cache.models_dir(home).exists()


def test_zip_archive_is_checked_then_unpacked_into_the_model_folder(http_server, home):
    files = {"plans.json": b'{"plans": 1}', "fold_0/checkpoint_final.pth": os.urandom(20_000)}
    archive = make_zip(files)
    entry = entry_for(model_record("organs-test", http_server.add("/organs.zip", archive), archive))
    reports: list[float] = []

    path = download(entry, home=home, progress=lambda f, m: reports.append(f))

    assert path == model_dir("organs-test", home) and entry.is_archive
    for name, data in files.items():
        assert (path / name).read_bytes() == data
    assert not (path / "organs.zip").exists()
    assert all(b >= a for a, b in zip(reports, reports[1:])) and reports[-1] == 1.0
    assert verify(entry, home).ok
    (path / "fold_0" / "checkpoint_final.pth").write_bytes(b"tampered")
    result = verify(entry, home)
    assert not result.ok and "fold_0/checkpoint_final.pth is corrupted" in result.problems[0]
    assert not any(name.startswith(".organs-test") for name in os.listdir(cache.models_dir(home)))


def test_new_catalog_version_replaces_the_old_folder(http_server, home):
    old = entry_for(model_record("liver-test", http_server.add("/v1/liver.pt", b"old" * 10), b"old" * 10))
    download(old, home=home)
    new_body = b"new" * 12
    new = entry_for(model_record("liver-test", http_server.add("/v2/liver.pt", new_body), new_body))
    assert not is_installed(new, home)
    assert "catalog now names" in verify(new, home).problems[0]

    download(new, home=home)

    assert model_path(new, home).read_bytes() == new_body and verify(new, home).ok
    assert cache_contents(home) == ["liver-test", "liver-test/.segforge-install.json",
                                    "liver-test/liver.pt"]


# --- failures leave nothing behind ------------------------------------------------

def test_wrong_checksum_installs_nothing(http_server, home):
    served = bytearray(BODY)
    served[1234] ^= 0xFF
    url = http_server.add("/liver.pt", bytes(served))
    entry = entry_for(model_record("liver-test", url, BODY))  # the catalog names BODY's hash

    with pytest.raises(ModelError) as caught:
        download(entry, home=home)

    assert "SHA-256" in caught.value.why and sha256(bytes(served)) in caught.value.why
    assert url in caught.value.what
    assert cache_contents(home) == []
    assert not is_installed(entry, home)


def test_interrupted_transfer_installs_nothing(http_server, home):
    url = http_server.add("/liver.pt", BODY, behaviour="truncate", cut=20_000)
    entry = entry_for(model_record("liver-test", url, BODY))

    with pytest.raises(ModelError) as caught:
        download(entry, home=home)

    assert "interrupted" in caught.value.what
    assert f"after 20000 of {len(BODY)} bytes" in caught.value.why
    assert cache_contents(home) == []


def test_not_found_names_the_url(http_server, home):
    url = http_server.url("/moved/liver.pt")
    entry = entry_for(model_record("liver-test", url, BODY))

    with pytest.raises(ModelError) as caught:
        download(entry, home=home)

    assert f"HTTP 404 Not Found for {url}" in caught.value.why
    assert "liver-test" in caught.value.what and "test-catalog.json" in caught.value.todo
    assert cache_contents(home) == []


def test_connection_refused_says_how_to_install_offline(closed_port, home):
    url = f"http://127.0.0.1:{closed_port}/liver.pt"
    entry = entry_for(model_record("liver-test", url, BODY))

    with pytest.raises(ModelError) as caught:
        download(entry, home=home)

    error = caught.value
    assert "refused" in error.why and url in error.why
    folder = model_dir("liver-test", home)
    assert "on a connected machine" in error.todo and str(folder / "liver.pt") in error.todo
    assert cache_contents(home) == []


def test_offline_name_lookup_failure_says_so(home, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(download_module.urllib.request, "urlopen", offline)
    entry = entry_for(model_record("liver-test", "https://models.example.org/liver.pt", BODY))
    with pytest.raises(ModelError) as caught:
        download(entry, home=home)
    assert "offline" in caught.value.why
    assert str(model_dir("liver-test", home)) in caught.value.todo
    assert cache_contents(home) == []


def test_silent_server_times_out(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY, behaviour="hang"), BODY))
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        download(entry, home=home, timeout=0.5)
    assert time.monotonic() - started < 10
    assert "did not answer in time" in caught.value.why
    assert cache_contents(home) == []


def test_wrong_size_is_refused_before_downloading(http_server, home):
    url = http_server.add("/liver.pt", BODY + b"extra")
    with pytest.raises(ModelError, match=f"offers {len(BODY) + 5} bytes but the catalog expects {len(BODY)}"):
        download(entry_for(model_record("liver-test", url, BODY)), home=home)
    assert cache_contents(home) == []


def test_cancel_from_the_progress_callback_leaves_nothing(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))

    def cancel_midway(fraction: float, message: str) -> None:
        if fraction > 0.3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        download(entry, home=home, progress=cancel_midway)
    assert cache_contents(home) == []


def test_archive_escaping_its_folder_is_refused(http_server, home):
    archive = make_zip({"ok.txt": b"fine", "../../escaped.txt": b"bad"})
    entry = entry_for(model_record("evil-test", http_server.add("/evil.zip", archive), archive))
    with pytest.raises(ModelError, match="unsafe"):
        download(entry, home=home)
    assert cache_contents(home) == []
    assert not (home / "escaped.txt").exists() and not (home.parent / "escaped.txt").exists()


def test_archive_that_is_not_a_zip_installs_nothing(http_server, home):
    junk = b"PK but not really a zip file" * 100
    entry = entry_for(model_record("junk-test", http_server.add("/junk.zip", junk), junk))
    with pytest.raises(ModelError, match="not a readable .zip"):
        download(entry, home=home)
    assert cache_contents(home) == []


def test_unwritable_cache_folder_is_a_clear_error(http_server, tmp_path):
    home = tmp_path / "home"
    home.write_text("a file where the cache folder should be")
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))
    with pytest.raises(ModelError) as caught:
        download(entry, home=home)
    assert str(cache.models_dir(home)) in caught.value.what and cache.HOME_ENV in caught.value.todo
    assert http_server.requests["/liver.pt"] == 0


def test_not_enough_disk_space_is_refused(http_server, home, monkeypatch):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))
    full_disk = types.SimpleNamespace(total=10**9, used=10**9 - 1000, free=1000)
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: full_disk)
    with pytest.raises(ModelError, match="disk space") as caught:
        download(entry, home=home)
    assert cache.HOME_ENV in caught.value.todo
    assert http_server.requests["/liver.pt"] == 0


def test_leftovers_of_killed_downloads_are_cleaned_but_live_ones_kept(http_server, home):
    root = cache.models_dir(home)
    root.mkdir(parents=True)
    stale, live = root / ".liver-test.abc.part", root / ".liver-test.def.part"
    stale.write_bytes(b"x")
    live.write_bytes(b"y")
    old = time.time() - 2 * download_module.STALE_AFTER_S
    os.utime(stale, (old, old))
    download(entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY)), home=home)
    assert not stale.exists() and live.exists()


# --- verify and offline installs ---------------------------------------------------

def test_verify_detects_a_corrupted_file_and_force_repairs_it(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))
    path = download(entry, home=home)
    assert verify(entry, home).ok
    damaged = bytearray(BODY)
    damaged[-1] ^= 0x01
    path.write_bytes(bytes(damaged))

    result = verify(entry, home)
    assert not result.ok and len(result.problems) == 1
    assert f"{path} is corrupted" in result.problems[0] and sha256(bytes(damaged)) in result.problems[0]

    download(entry, home=home, force=True)
    assert verify(entry, home).ok and path.read_bytes() == BODY


def test_verify_reports_a_missing_file_and_a_missing_manifest(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY))
    path = download(entry, home=home)
    path.unlink()
    assert "is missing" in verify(entry, home).problems[0]
    (path.parent / cache.MANIFEST_NAME).unlink()
    assert "incomplete" in verify(entry, home).problems[0]
    assert not is_installed(entry, home)


def test_file_copied_by_hand_is_checked_and_installed_offline(closed_port, home):
    entry = entry_for(model_record("liver-test", f"http://127.0.0.1:{closed_port}/liver.pt", BODY))
    copy = model_dir("liver-test", home) / "liver.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(BODY)
    assert not is_installed(entry, home)

    assert download(entry, home=home) == copy

    assert is_installed(entry, home) and verify(entry, home).ok


def test_bad_copy_by_hand_is_refused_and_kept(closed_port, home):
    entry = entry_for(model_record("liver-test", f"http://127.0.0.1:{closed_port}/liver.pt", BODY))
    copy = model_dir("liver-test", home) / "liver.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(TAMPERED)
    with pytest.raises(ModelError) as caught:
        download(entry, home=home)
    assert str(copy) in caught.value.what and "good copy" in caught.value.todo
    assert copy.read_bytes() == TAMPERED and not is_installed(entry, home)


# --- downloads without a catalog checksum ---------------------------------------------

def read_install_manifest(home: Path, model_id: str) -> dict:
    return json.loads((model_dir(model_id, home) / cache.MANIFEST_NAME).read_text(encoding="utf-8"))


def test_unverified_download_warns_records_its_hash_and_verify_catches_tampering(http_server, home, caplog):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY, sha256=None))
    assert not entry.verified

    with caplog.at_level(logging.WARNING, logger="segforge.catalog"):
        path = download(entry, home=home)

    assert path.read_bytes() == BODY and is_installed(entry, home)
    assert any(UNVERIFIED in record.getMessage() for record in caplog.records)
    manifest = read_install_manifest(home, "liver-test")
    assert manifest["sha256"] == sha256(BODY) and manifest["catalog_sha256"] is None
    assert manifest["verified"] is False and manifest["files"] == {"liver.pt": sha256(BODY)}
    assert verify(entry, home).ok

    download(entry, home=home)
    assert http_server.requests["/liver.pt"] == 1  # installed: not fetched again
    path.write_bytes(TAMPERED)
    result = verify(entry, home)
    assert not result.ok and f"{path} is corrupted" in result.problems[0] and sha256(BODY) in result.problems[0]


def test_unverified_download_of_unknown_size_uses_the_announced_size(http_server, home):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY, sha256=None,
                                   size_bytes=None))
    reports: list[tuple[float, str]] = []
    path = download(entry, home=home, progress=lambda f, m: reports.append((f, m)))
    assert path.read_bytes() == BODY and verify(entry, home).ok
    fractions = [f for f, _ in reports]
    assert all(b >= a for a, b in zip(fractions, fractions[1:])) and fractions[-1] == 1.0
    assert any(f"of {download_module.human_size(len(BODY))}" in m for _, m in reports)
    assert read_install_manifest(home, "liver-test")["size_bytes"] == len(BODY)


def test_unknown_size_still_checks_free_space_once_the_server_announces_it(http_server, home, monkeypatch):
    entry = entry_for(model_record("liver-test", http_server.add("/liver.pt", BODY), BODY, sha256=None,
                                   size_bytes=None))
    full_disk = types.SimpleNamespace(total=10**9, used=10**9 - 1000, free=1000)
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: full_disk)
    with pytest.raises(ModelError, match="disk space") as caught:
        download(entry, home=home)
    assert download_module.human_size(len(BODY)) in caught.value.why
    assert http_server.requests["/liver.pt"] == 1 and cache_contents(home) == []


def test_unverified_interrupted_transfer_installs_nothing(http_server, home):
    url = http_server.add("/liver.pt", BODY, behaviour="truncate", cut=20_000)
    entry = entry_for(model_record("liver-test", url, BODY, sha256=None, size_bytes=None))
    with pytest.raises(ModelError) as caught:
        download(entry, home=home)
    assert "interrupted" in caught.value.what and cache_contents(home) == []


def test_unverified_install_belongs_to_its_url(http_server, home):
    old = entry_for(model_record("liver-test", http_server.add("/v1/liver.pt", BODY), BODY, sha256=None))
    download(old, home=home)
    new = entry_for(model_record("liver-test", http_server.add("/v2/liver.pt", BODY), BODY, sha256=None))
    assert not is_installed(new, home)
    assert "catalog now names" in verify(new, home).problems[0]
    # the catalog learning the checksum of what was installed keeps it installed
    checked = entry_for(model_record("liver-test", http_server.url("/v1/liver.pt"), BODY))
    assert is_installed(checked, home) and verify(checked, home).ok


def test_unverified_copy_by_hand_is_installed_with_its_hash(closed_port, home):
    entry = entry_for(model_record("liver-test", f"http://127.0.0.1:{closed_port}/liver.pt", BODY, sha256=None))
    copy = model_dir("liver-test", home) / "liver.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(BODY)
    assert download(entry, home=home) == copy
    assert read_install_manifest(home, "liver-test")["sha256"] == sha256(BODY) and verify(entry, home).ok


# --- nnU-Net model folders: SegForge's cache or TotalSegmentator's weights ------------

DATASET = "Dataset297_TotalSegmentator_total_3mm_1559subj"
TRAINER = "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres"
NNUNET_FILES = {f"{DATASET}/{TRAINER}/plans.json": b'{"plans": 1}',
                f"{DATASET}/{TRAINER}/dataset.json": b'{"labels": {"background": 0, "liver": 1}}',
                f"{DATASET}/{TRAINER}/fold_0/checkpoint_final.pth": os.urandom(5_000)}


def nnunet_entry(url: str, body: bytes, path: str = f"{DATASET}/{TRAINER}", model_id: str = "ts-fast",
                 **overrides: object) -> ModelEntry:
    record = model_record(model_id, url, body, framework="nnunetv2", sha256=None, size_bytes=None,
                          nnunet={"path": path, "folds": [0], "configuration": "3d_fullres"}, **overrides)
    return entry_for(record)


def make_folder(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_nnunet_archive_installs_and_names_its_model_folder(http_server, home):
    archive = make_zip(NNUNET_FILES)
    entry = nnunet_entry(http_server.add(f"/{DATASET}.zip", archive), archive)
    assert nnunet_model_folder(entry, home) is None and not is_installed(entry, home)

    path = download(entry, home=home)

    assert path == model_dir("ts-fast", home) / DATASET / TRAINER == nnunet_model_folder(entry, home)
    checkpoint = NNUNET_FILES[f"{DATASET}/{TRAINER}/fold_0/checkpoint_final.pth"]
    assert (path / "fold_0" / "checkpoint_final.pth").read_bytes() == checkpoint
    assert is_installed(entry, home) and verify(entry, home).ok
    assert read_install_manifest(home, "ts-fast")["sha256"] == sha256(archive)
    (path / "plans.json").unlink()
    assert nnunet_model_folder(entry, home) is None and not is_installed(entry, home)


def test_nnunet_archive_without_the_named_folder_installs_nothing(http_server, home):
    archive = make_zip(NNUNET_FILES)
    entry = nnunet_entry(http_server.add("/ts.zip", archive), archive,
                         path=f"{DATASET}/nnUNetTrainer__nnUNetPlans__3d_fullres")
    with pytest.raises(ModelError) as caught:
        download(entry, home=home)
    assert "no plans.json or dataset.json" in caught.value.why and "nnunet.path" in caught.value.todo
    assert cache_contents(home) == []


@pytest.mark.parametrize("where", ["TOTALSEG_WEIGHTS_PATH", "TOTALSEG_HOME_DIR", "HOME"])
def test_totalsegmentator_weights_are_used_where_totalsegmentator_keeps_them(where, home, tmp_path, monkeypatch):
    root = tmp_path / "elsewhere"
    weights = {"TOTALSEG_WEIGHTS_PATH": root, "TOTALSEG_HOME_DIR": root / "nnunet" / "results",
               "HOME": root / ".totalsegmentator" / "nnunet" / "results"}[where]
    monkeypatch.delenv(cache.TOTALSEG_HOME_ENV)
    if where != "HOME":
        monkeypatch.setenv(where, str(root))
    else:
        monkeypatch.setenv("HOME", str(root))
    entry = nnunet_entry("https://github.com/example/releases/ts.zip", b"unused")
    assert cache.totalsegmentator_weights_dir() == weights
    assert nnunet_model_folder(entry, home) is None and not is_installed(entry, home)

    make_folder(weights, {k: v for k, v in NNUNET_FILES.items() if not k.endswith("dataset.json")})
    assert nnunet_model_folder(entry, home) is None  # plans.json alone is not a model folder
    make_folder(weights, NNUNET_FILES)

    assert nnunet_model_folder(entry, home) == weights / DATASET / TRAINER
    assert is_installed(entry, home)
    assert download(entry, home=home) == weights / DATASET / TRAINER  # nothing downloaded
    assert "which SegForge did not install" in verify(entry, home).problems[0]


def test_segforges_own_copy_comes_first_and_only_dataset_folders_are_looked_up(http_server, home, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv(cache.TOTALSEG_WEIGHTS_ENV, str(tmp_path / "ts"))
    make_folder(tmp_path / "ts", NNUNET_FILES)
    archive = make_zip(NNUNET_FILES)
    entry = nnunet_entry(http_server.add("/ts.zip", archive), archive)
    assert nnunet_model_folder(entry, home) == tmp_path / "ts" / DATASET / TRAINER
    assert download(entry, home=home, force=True) == model_dir("ts-fast", home) / DATASET / TRAINER
    assert nnunet_model_folder(entry, home) == model_dir("ts-fast", home) / DATASET / TRAINER

    make_folder(tmp_path / "ts", {f"weights/{TRAINER}/{name}": b"{}" for name in ("plans.json", "dataset.json")})
    other = nnunet_entry("https://example.org/w.zip", b"x", path=f"weights/{TRAINER}", model_id="not-a-dataset")
    assert nnunet_model_folder(other, home) is None and not is_installed(other, home)
    plain = entry_for(model_record("plain-test", "https://example.org/w.pt", BODY))
    assert nnunet_model_folder(plain, home) is None


def test_composite_is_installed_when_all_its_parts_are(http_server, home, tmp_path):
    records = []
    for name, dataset in (("part-a", "Dataset501_PartA"), ("part-b", "Dataset502_PartB")):
        archive = make_zip({f"{dataset}/{TRAINER}/{f}": b"{}" for f in ("plans.json", "dataset.json")})
        records.append(model_record(name, http_server.add(f"/{name}.zip", archive), archive, framework="nnunetv2",
                                    labels={"1": f"{name}-organ"},
                                    nnunet={"path": f"{dataset}/{TRAINER}", "folds": [0],
                                            "configuration": "3d_fullres"}))
    records.append(model_record("whole", None, b"", framework="composite", sha256=None, size_bytes=0,
                                parts=["part-a", "part-b"], labels={"1": "part-a-organ", "2": "part-b-organ"}))
    catalog = load_catalog(write_catalog(tmp_path / "c.json", records), [])
    whole = catalog.get("whole")
    assert not is_installed(whole, home, catalog)

    download(catalog.get("part-a"), home=home)
    assert not is_installed(whole, home, catalog)
    reports: list[float] = []
    assert download(whole, home=home, catalog=catalog, progress=lambda f, m: reports.append(f)) is None

    assert is_installed(whole, home, catalog) and verify(whole, home, catalog=catalog).ok
    assert http_server.requests["/part-a.zip"] == 1 and http_server.requests["/part-b.zip"] == 1
    assert all(b >= a for a, b in zip(reports, reports[1:])) and reports[-1] == 1.0
    (nnunet_model_folder(catalog.get("part-b"), home) / "plans.json").write_bytes(b"changed")
    assert verify(whole, home, catalog=catalog).problems[0].startswith("part part-b: file ")


# --- the command line: segforge models list / download / verify --------------------

def run_cli(*args: str, home: Path, catalog: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``segforge models ...`` as a real process, through the real entry point."""
    command = [sys.executable, "-m", "segforge.cli.main", "models", *args]
    env = {k: v for k, v in os.environ.items()
           if k not in PROXY_VARIABLES and k not in (CATALOG_ENV, cache.TOTALSEG_WEIGHTS_ENV)}
    env.update({cache.HOME_ENV: str(home), "PYTHONPATH": str(REPO),
                cache.TOTALSEG_HOME_ENV: str(home.parent / "no-totalsegmentator")})
    if catalog is not None:
        env[CATALOG_ENV] = str(catalog)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The error lines of stderr (a progress bar may have been drawn before them).

    Also checks the error is the last thing printed and no traceback leaked.
    """
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("segforge: error: ")]
    assert errors and lines[-1] == errors[-1], result.stderr
    assert "Traceback" not in result.stderr
    return errors


@pytest.fixture
def site_catalog(http_server, tmp_path) -> Path:
    good = model_record("liver-test", http_server.add("/liver.pt", BODY), BODY)
    moved = model_record("moved-test", http_server.url("/gone.pt"), BODY)
    return write_catalog(tmp_path / "site.json", [good, moved])


def table_row(output: str, model_id: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [model_id])


def test_cli_list_download_verify(site_catalog, home):
    listed = run_cli("list", home=home, catalog=site_catalog)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[0].split() == ["ID", "WORKFLOW", "FRAMEWORK", "SIZE", "CHECKSUM", "INSTALLED"]
    assert table_row(listed.stdout, "vesselness-frangi") == ["vesselness-frangi", "vessel", "builtin", "-", "-", "yes"]
    assert table_row(listed.stdout, "liver-test") == ["liver-test", "organ", "torchscript", "50.0", "KB", "sha256",
                                                      "no"]

    nothing = run_cli("verify", home=home, catalog=site_catalog)
    assert nothing.returncode == 0 and "nothing to verify" in nothing.stdout

    fetched = run_cli("download", "liver-test", home=home, catalog=site_catalog)
    assert fetched.returncode == 0, fetched.stderr
    installed = model_dir("liver-test", home) / "liver.pt"
    assert installed.read_bytes() == BODY and str(installed) in fetched.stdout
    assert table_row(run_cli("list", home=home, catalog=site_catalog).stdout, "liver-test")[-1] == "yes"

    checked = run_cli("verify", home=home, catalog=site_catalog)
    assert checked.returncode == 0 and "liver-test: ok" in checked.stdout

    installed.write_bytes(b"x" * len(BODY))
    damaged = run_cli("verify", home=home, catalog=site_catalog)
    assert damaged.returncode == 1
    assert "liver-test: BAD" in damaged.stdout and "corrupted" in damaged.stdout
    assert "--force" in damaged.stdout
    assert error_lines(damaged) == ["segforge: error: 1 of 1 installed model(s) failed verification."]


def test_cli_download_failure_is_one_line(site_catalog, home):
    result = run_cli("download", "moved-test", home=home, catalog=site_catalog)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("segforge: error: ") and "HTTP 404" in lines[0]
    assert "/gone.pt" in lines[0] and "Traceback" not in result.stderr
    assert cache_contents(home) == []


def test_cli_download_unknown_id_and_refused_connection(closed_port, home, tmp_path):
    record = model_record("liver-test", f"http://127.0.0.1:{closed_port}/liver.pt", BODY)
    catalog = write_catalog(tmp_path / "site.json", [record])

    unknown = run_cli("download", "no-such-model", home=home, catalog=catalog)
    assert unknown.returncode == 1
    assert len(error_lines(unknown)) == 1 and "'no-such-model'" in unknown.stderr

    refused = run_cli("download", "liver-test", home=home, catalog=catalog)
    assert refused.returncode == 1
    lines = error_lines(refused)
    assert len(lines) == 1 and "refused" in lines[0]
    assert str(model_dir("liver-test", home)) in lines[0]


def test_cli_interrupted_download_ends_with_one_error_line(http_server, home, tmp_path):
    url = http_server.add("/liver.pt", BODY, behaviour="truncate", cut=10_000)
    catalog = write_catalog(tmp_path / "site.json", [model_record("liver-test", url, BODY)])
    result = run_cli("download", "liver-test", home=home, catalog=catalog)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in result.stderr
    assert cache_contents(home) == []


def test_cli_malformed_catalog_is_one_line(home, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    result = run_cli("list", home=home, catalog=broken)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and str(broken) in lines[0] and "not valid JSON" in lines[0]


def test_cli_models_without_subcommand_is_a_usage_error(capsys):
    from segforge.cli.main import build_parser
    parser = build_parser()
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["models"])
    assert caught.value.code == 2 and "download" in capsys.readouterr().err
    args = parser.parse_args(["models", "download", "liver-test", "--force"])
    assert args.func.__name__ == "download_model" and args.model_id == "liver-test" and args.force
