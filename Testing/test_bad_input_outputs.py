"""Bad input, outputs: the result folder (``--out``) is written all or nothing (``segforge.output_set``).

Each case checks the message the user sees and that nothing was lost or changed: the files of
an earlier run keep their bytes, and no temporary folder (``.<out>.partial-*``) or set put
aside (``.<out>.old-*``) is left beside it. The tests run as root, where chmod does not stop
a write, so "not writable" is a real read-only file system (a tmpfs mounted ``ro``) and a
real kernel refusal (a folder under ``/sys``); a full disk is a real small tmpfs where one
can be mounted, and an injected ``OSError(ENOSPC)`` in the writer otherwise; Ctrl-C is an
injected ``KeyboardInterrupt`` in the writer; SIGTERM is a real signal to a real
``segforge vessel`` process.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from segforge import __version__
from segforge.cli.main import main
from segforge.output_set import MANIFEST, verify_manifest
from test_cli import VESSEL_TREE_FILES, segforge, synthetic_mra
from test_cli_interactive import write_prompts
from test_interactive_worker import LESION_A_IJK, lesion_image, world_of

VESSEL_FILES = VESSEL_TREE_FILES


def snapshot(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` (hidden ones too) -> its SHA-256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def leftovers(parent: Path) -> list[str]:
    """Temporary folders or old sets beside the results."""
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, Path]:
    """An input and the results of one ``segforge vessel`` run on it (copied by each test)."""
    folder = tmp_path_factory.mktemp("first")
    source, _ = synthetic_mra(folder)
    run = segforge("vessel", str(source), "--out", str(folder / "res"), "--preset", "mra", "--device", "cpu")
    assert run.returncode == 0, run.stderr[-2000:]
    return source, folder / "res"


@pytest.fixture
def results(first_run, tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """This test's copy of the first run: (input, --out, the files' hashes)."""
    source, res = first_run
    out = tmp_path / "res"
    shutil.copytree(res, out)
    return source, out, snapshot(out)


@pytest.fixture
def in_process(monkeypatch):
    """``segforge`` called in this process (so a writer can be replaced); SIGTERM's handler restored."""
    previous = signal.getsignal(signal.SIGTERM)
    yield lambda *args: main(list(args))
    signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str, *options: str):
    """A real tmpfs of ``size`` at ``folder`` (root only); skips the test where none can be mounted."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)), "tmpfs",
                              str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and lines and lines[-1].startswith("segforge: error:"), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment.lower() in lines[-1].lower(), lines[-1]
    return lines[-1]


# --- a folder that already holds results ------------------------------------------------------

def test_a_second_run_is_refused_before_any_work_and_changes_nothing(results):
    source, out, before = results
    started = time.perf_counter()
    run = segforge("vessel", str(source), "--out", str(out), "--preset", "mra", "--no-surface")
    one_line_error(run, "already holds results", "--overwrite", "choose another --out")
    assert "Vesselness" not in run.stderr  # refused before the work started
    assert time.perf_counter() - started < 60
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_overwrite_replaces_the_whole_set(results, tmp_path):
    source, out, before = results
    other = tmp_path / "other.nrrd"
    shutil.copy(source, other)
    run = segforge("vessel", str(other), "--out", str(out), "--preset", "mra", "--no-centerlines", "--no-surface",
                   "--overwrite")
    assert run.returncode == 0, run.stderr[-2000:]
    # No file of the first run is left: only what the second run wrote, with its own manifest.
    assert {p.name for p in out.iterdir()} == {"vessels.seg.nrrd", "summary.json", MANIFEST}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["input"] == str(other) and manifest["parameters"]["options"]["no_surface"] is True
    assert json.loads((out / "summary.json").read_text())["input"] == str(other)
    assert verify_manifest(out) == [] and leftovers(out.parent) == []
    assert snapshot(out)["summary.json"] != before["summary.json"]


def test_the_manifest_names_every_file_with_its_size_and_sha256(results):
    source, out, _ = results
    manifest = json.loads((out / MANIFEST).read_text())
    assert {entry["name"] for entry in manifest["files"]} == VESSEL_FILES - {MANIFEST}
    for entry in manifest["files"]:
        data = (out / entry["name"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["segforge_version"] == __version__ and manifest["command"] == "vessel"
    assert manifest["input"] == str(source) and manifest["parameters"]["form"]["preset"] == "mra"
    assert manifest["date"][:4].isdigit()
    assert verify_manifest(out) == []
    (out / "branches.csv").write_text("edited\n")  # a changed file is found
    assert verify_manifest(out) == ["branches.csv: changed"]


def test_overwrite_refuses_a_folder_holding_files_segforge_did_not_write(results):
    source, out, _ = results
    (out / "my notes.txt").write_text("keep me")
    before = snapshot(out)
    run = segforge("vessel", str(source), "--out", str(out), "--preset", "mra", "--overwrite")
    one_line_error(run, "Cannot overwrite", "my notes.txt", "move them away")
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_organ_and_interactive_refuse_a_second_run_too(results, tmp_path):
    source, out, before = results
    one_line_error(segforge("organ", str(source), "--out", str(out)), "already holds results", "--overwrite")
    prompts = write_prompts(tmp_path / "p.json", [{"type": "point", "position": [0, 0, 0]}])
    one_line_error(segforge("interactive", str(source), "--prompts", str(prompts), "--out", str(out)),
                   "already holds results", "--overwrite")
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_the_interactive_commands_old_partial_files_are_gone_after_an_overwrite(tmp_path):
    """Earlier versions wrote ``.lesion.partial.seg.nrrd`` / ``.summary.partial.json`` into --out and
    left them there on a full disk; an overwrite leaves the new set only, and no run writes them."""
    image, _, _ = lesion_image()
    source = write_image_file(image, tmp_path / "ct.nrrd")
    click = world_of(image, LESION_A_IJK).tolist()
    prompts = write_prompts(tmp_path / "p.json", [{"type": "point", "position": click}])
    out = tmp_path / "out"
    out.mkdir()
    for name in ("lesion.seg.nrrd", "summary.json", ".lesion.partial.seg.nrrd", ".summary.partial.json"):
        (out / name).write_bytes(b"from an old run")
    run = segforge("interactive", str(source), "--prompts", str(prompts), "--out", str(out), "--overwrite")
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["lesion.seg.nrrd", MANIFEST, "summary.json"]
    assert verify_manifest(out) == [] and leftovers(tmp_path) == []


# --- problems found before the work -----------------------------------------------------------

def test_out_is_a_file(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file")
    run = segforge("vessel", str(tmp_path / "missing.nii.gz"), "--out", str(blocker))
    one_line_error(run, "is a file, not a folder", "give a folder for --out")  # before "No file": checked first
    assert blocker.read_text() == "a file" and leftovers(tmp_path) == []


def test_a_parent_of_out_is_a_file(results, tmp_path):
    source, _, _ = results
    (tmp_path / "notes").write_text("a file")
    run = segforge("vessel", str(source), "--out", str(tmp_path / "notes" / "sub" / "res"))
    one_line_error(run, "notes is a file, not a folder", "parent folders")
    assert (tmp_path / "notes").read_text() == "a file"


def test_a_folder_the_kernel_refuses_is_said_before_the_work(results):
    """Simulated by a real refusal: nobody, root included, may make a folder under /sys (EPERM)."""
    source, _, _ = results
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys here")
    run = segforge("vessel", str(source), "--out", "/sys/segforge-results")
    one_line_error(run, "Cannot write into /sys/segforge-results", "not permitted", "choose a folder you may write")
    assert "Vesselness" not in run.stderr and not Path("/sys/segforge-results").exists()


def test_a_read_only_file_system_is_said_before_the_work(results, tmp_path):
    """Simulated by a real read-only file system (a tmpfs mounted ro): chmod does not stop root."""
    source, _, _ = results
    with tmpfs(tmp_path / "ro", "4m", "ro") as mount:
        run = segforge("vessel", str(source), "--out", str(mount / "res"))
        one_line_error(run, "read-only", "choose a folder you may write")
        assert "Vesselness" not in run.stderr and list(mount.iterdir()) == []


def test_too_little_free_space_is_said_before_the_work(results, tmp_path):
    """A real 8 MB tmpfs nearly filled: the rough estimate (input size, plus 1 MB) does not fit."""
    source, out, before = results
    with tmpfs(tmp_path / "small", "8m") as mount:  # the results take about 2 MB
        shutil.copytree(out, mount / "res")
        with contextlib.suppress(OSError):
            (mount / "filler").write_bytes(b"\0" * (8 << 20))
        run = segforge("vessel", str(source), "--out", str(mount / "res"), "--overwrite")
        one_line_error(run, "Not enough free space", "MB are needed", "free some space")
        assert "Vesselness" not in run.stderr
        assert snapshot(mount / "res") == before and leftovers(mount) == []


def test_a_failed_run_removes_the_folders_it_made(tmp_path):
    thin = write_image_file(_thin_image(), tmp_path / "thin.nrrd")
    run = segforge("vessel", str(thin), "--out", str(tmp_path / "a" / "b" / "res"))
    one_line_error(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thin.nrrd"]


# --- failures while writing ------------------------------------------------------------------

def test_a_full_disk_while_writing_leaves_the_old_results_and_no_temporary_files(results, in_process,
                                                                               monkeypatch, capsys):
    """Injected: the CSV writer fails with ENOSPC after writing half a file."""
    import segforge.vessel.outputs as vessel_outputs

    source, out, before = results

    def full(path, columns, rows):
        Path(path).write_text("id,par")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(vessel_outputs, "write_csv", full)
    assert in_process("vessel", str(source), "--out", str(out), "--preset", "mra", "--overwrite") == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("segforge: error: Cannot write the results into") and "disk is full" in message
    assert "previous results" in message and "unchanged" in message
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_a_real_full_disk_while_writing(first_run, tmp_path, in_process, monkeypatch, capsys):
    """A real ENOSPC from a small tmpfs filled to the brim; the free-space check is switched off
    in-process so that the write itself meets the full disk (the case the check cannot foresee)."""
    import segforge.output_set as output_set

    source, res = first_run
    with tmpfs(tmp_path / "full", "8m") as mount:  # the results take about 2 MB
        shutil.copytree(res, mount / "res")
        before = snapshot(mount / "res")
        with contextlib.suppress(OSError):
            (mount / "filler").write_bytes(b"\0" * (8 << 20))
        monkeypatch.setattr(output_set, "require_space", lambda *args, **kwargs: None)
        assert in_process("vessel", str(source), "--out", str(mount / "res"), "--preset", "mra", "--overwrite") == 1
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert "disk is full" in message and "Traceback" not in message
        assert snapshot(mount / "res") == before and leftovers(mount) == []


def test_ctrl_c_while_writing_leaves_the_old_results_and_no_temporary_files(results, in_process, monkeypatch,
                                                                           capsys):
    """Injected: KeyboardInterrupt from the mesh writer, after the segmentation was written."""
    import segforge.vessel.outputs as vessel_outputs

    source, out, before = results

    def interrupted(polydata, path):
        Path(path).write_text("<?xml")
        raise KeyboardInterrupt

    monkeypatch.setattr(vessel_outputs, "write_polydata", interrupted)
    assert in_process("vessel", str(source), "--out", str(out), "--preset", "mra", "--overwrite") == 130
    assert "interrupted" in capsys.readouterr().err
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_an_exception_in_the_work_leaves_the_old_results(results, in_process, monkeypatch):
    import segforge.vessel.pipeline as pipeline

    source, out, before = results

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "run_vessel_pipeline", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        in_process("vessel", str(source), "--out", str(out), "--preset", "mra", "--overwrite")
    assert snapshot(out) == before and leftovers(out.parent) == []


SLOW_WRITER = """
import sys, time
import segforge.vessel.outputs as outputs
from segforge.cli.main import main
real = outputs.write_csv
def slow(path, columns, rows):
    real(path, columns, rows)
    print("WRITING", flush=True)
    time.sleep(60)
outputs.write_csv = slow
sys.exit(main(sys.argv[1:]))
"""


def _terminate(command: list[str], ready, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.time() + 90
        while not ready(process) and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[1][-2000:]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_sigterm_while_computing_leaves_nothing_partial(results):
    """A real SIGTERM to a real ``segforge vessel`` once its temporary folder exists (the work has started)."""
    source, out, before = results
    run = _terminate([sys.executable, "-m", "segforge.cli.main", "vessel", str(source), "--out", str(out),
                      "--preset", "mra", "--overwrite"], lambda process: leftovers(out.parent), out)
    assert run.returncode == 143 and "terminated" in run.stderr and "Traceback" not in run.stderr
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_sigterm_while_writing_leaves_nothing_partial(results):
    """A real SIGTERM to a real ``segforge vessel`` process while it writes its files: its CSV
    writer is slowed down in that process, and the signal comes once a file is written."""
    source, out, before = results
    partial = []

    def writing(process) -> bool:
        partial[:] = [p for p in out.parent.glob(".res.partial-*/branches.csv")]
        return bool(partial)

    run = _terminate([sys.executable, "-c", SLOW_WRITER, "vessel", str(source), "--out", str(out), "--preset",
                      "mra", "--overwrite"], writing, out)
    assert partial, "the signal came while the files were written"
    assert run.returncode == 143 and "terminated" in run.stderr
    assert snapshot(out) == before and leftovers(out.parent) == []


# --- the demo ---------------------------------------------------------------------------------

def test_the_demo_follows_the_same_policy(results):
    """``scripts/demo.py`` refuses a folder holding results before it starts Slicer, unless --overwrite."""
    _, out, before = results
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out)], capture_output=True,
                         encoding="utf-8", errors="replace", env=env, timeout=300)
    assert run.returncode == 1 and "demo: error:" in run.stderr and "already holds results" in run.stderr
    assert "--overwrite" in run.stderr and "Traceback" not in run.stderr
    assert snapshot(out) == before and leftovers(out.parent) == []
    assert "--overwrite" in (REPO / "Makefile").read_text().split("scripts/demo.py", 1)[1].splitlines()[0]


# --- helpers ----------------------------------------------------------------------------------

def write_image_file(image, path: Path) -> Path:
    from segforge.image_io import write_image

    return write_image(image, path)


def _thin_image():
    from segforge.image import Image

    return Image(np.zeros((1, 8, 8), np.int16))


# --- hostile tries, second round ----------------------------------------------------------------

def small_ct(path: Path) -> Path:
    """A tiny CT in Hounsfield units (air around a soft-tissue box) that `segforge organ` takes in ~1 s."""
    from segforge.image import Image
    from segforge.image_io import write_image

    array = np.full((12, 24, 24), -1000, np.int16)
    array[3:9, 6:18, 6:18] = 40
    return write_image(Image(array, (1.5, 1.5, 3.0)), path)


def test_out_that_is_the_input_folder_or_holds_the_input_is_refused(tmp_path):
    """--out = the DICOM folder read was refused as "already holds results (slice_0001.dcm, ...)",
    suggesting --overwrite; an --out holding the input file is refused before any work too."""
    from conftest import make_image
    from segforge.image_io import write_dicom_series

    series = tmp_path / "series"
    write_dicom_series(make_image((6, 10, 12), np.int16), series)
    before = snapshot(series)
    for extra in ((), ("--overwrite",)):
        one_line_error(segforge("organ", str(series), "--out", str(series), *extra),
                       "Cannot write the results into", "is the input", "outside the input")
    ct = small_ct(tmp_path / "data" / "ct.nii.gz")
    one_line_error(segforge("organ", str(ct), "--out", str(tmp_path / "data"), "--overwrite"),
                   "holds the input", str(ct))
    assert snapshot(series) == before and sorted(p.name for p in ct.parent.iterdir()) == ["ct.nii.gz"]
    assert leftovers(tmp_path) == []


def test_two_runs_started_on_one_out_never_replace_each_other_silently(tmp_path):
    """Both exited 0 and the first run's results were replaced by the second's, without
    --overwrite: the first printed 'wrote organs.seg.nrrd' for a file that was not its own."""
    a, b = small_ct(tmp_path / "a.nii.gz"), small_ct(tmp_path / "b.nii.gz")
    out = tmp_path / "res"
    command = [sys.executable, "-m", "segforge.cli.main", "organ"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runs = [subprocess.Popen([*command, str(path), "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for path in (a, b)]
    finished = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in finished)
    assert codes == [0, 1], finished
    winner = next(path for path, (code, _, _) in zip((a, b), finished) if code == 0)
    refusal = next(err for code, _, err in finished if code == 1)
    assert "Traceback" not in refusal and ("another run wrote into that folder" in refusal.lower()
                                           or "already holds results" in refusal), refusal
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["input"] == str(winner) and verify_manifest(out) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_set_whose_out_changed_while_it_worked_is_not_moved_in(tmp_path, overwrite):
    """The same race, step by step: both sets prepared, the first moved in, the second refused."""
    from segforge.errors import InputError
    from segforge.output_set import OutputSet

    out = tmp_path / "res"
    if overwrite:
        out.mkdir()
        (out / "summary.json").write_text("{}")
    first, second = (OutputSet(out, overwrite=overwrite) for _ in range(2))
    for outputs, text in ((first, "first"), (second, "second")):
        outputs.prepare()
        (outputs.path("summary.json")).write_text(text)
    first.commit({"summary": first.path("summary.json")})
    with pytest.raises(InputError) as caught:
        second.commit({"summary": second.path("summary.json")})
    second.abort()
    assert "another run wrote into that folder" in caught.value.why and "untouched" in caught.value.why
    assert (out / "summary.json").read_text() == "first" and leftovers(tmp_path) == []


def test_what_reading_the_input_warned_of_is_kept_in_the_manifest(tmp_path):
    """A NaN pixdim is read as 1 mm with a warning on stderr, which the results did not keep."""
    import struct

    ct = small_ct(tmp_path / "ct.nii")
    data = bytearray(ct.read_bytes())
    data[80:92] = struct.pack("<3f", 1.5, float("nan"), 3.0)
    ct.write_bytes(bytes(data))
    run = segforge("organ", str(ct), "--out", str(tmp_path / "res"))
    assert run.returncode == 0, run.stderr[-2000:]
    warnings = json.loads((tmp_path / "res" / MANIFEST).read_text())["input_warnings"]
    assert len(warnings) == 1 and "1 mm is assumed" in warnings[0] and "ct.nii" in warnings[0]
    assert "input_warnings" not in json.loads((tmp_path / "res" / MANIFEST).read_text())["parameters"]["options"]


@pytest.mark.parametrize("delay_s", [0.15, 0.4, 0.8])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, delay_s):
    """Ctrl-C while the command imported its modules (before main's try) gave a KeyboardInterrupt
    traceback; nothing is written either way."""
    ct = small_ct(tmp_path / "ct.nii.gz")
    run = subprocess.Popen([sys.executable, "-m", "segforge.cli.main", "organ", str(ct), "--out",
                            str(tmp_path / "res")], stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO)))
    time.sleep(delay_s)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    if run.returncode != 0:  # (on a fast machine the run may be done before the signal)
        # 130, or death by SIGINT (-2, which a shell shows as 130 too): CPython ends so when a
        # KeyboardInterrupt went through a C extension's nested interpreter call, even one caught later.
        assert run.returncode in (130, -signal.SIGINT), (run.returncode, stderr)
        assert stderr.strip().splitlines()[-1] == "segforge: interrupted", stderr
        assert not (tmp_path / "res").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("made", ["the temporary folder", "a parent folder"])
def test_ctrl_c_just_after_a_folder_is_made_leaves_nothing(tmp_path, monkeypatch, made):
    """A Ctrl-C arriving between the temporary folder's mkdir and the set remembering it left a
    ``.res.partial-...`` folder behind (seen once in CI): the signal now waits until the folder
    is remembered, and a failed ``__enter__`` cleans up what it made."""
    from segforge.output_set import OutputSet

    real_mkdir = Path.mkdir
    target = tmp_path / "new" / "res"

    def mkdir_then_ctrl_c(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if (made == "a parent folder") == (self == target.parent):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with OutputSet(target):
            pytest.fail("the work must not start after a Ctrl-C while preparing")
    assert list(tmp_path.iterdir()) == []


def test_a_command_is_finished_once_its_results_are_in_place(tmp_path):
    """A Ctrl-C just after the set was moved in killed the command by SIGINT (exit -2, as if
    interrupted) with its complete results in place; now the run is finished at the commit."""
    from segforge.output_set import OutputSet

    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with OutputSet(tmp_path / "res", finished_at_commit=True) as outputs:
            outputs.path("summary.json").write_text("{}")
            outputs.commit({"summary": outputs.path("summary.json")})
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a KeyboardInterrupt would be raised here
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
    assert verify_manifest(tmp_path / "res") == []


def test_main_gives_a_calling_program_its_signal_handling_back(tmp_path):
    def handler(number, frame):
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        assert main(["organ", str(small_ct(tmp_path / "ct.nii.gz")), "--out", str(tmp_path / "res")]) == 0
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_failed_read_of_the_input_is_not_called_an_output_problem(tmp_path):
    """An input folder on /proc failed with EPERM inside the output set, which reported "Cannot
    write the results into res: the operation is not permitted"; an OSError about another file
    than the set's passes through unchanged."""
    from segforge.output_set import OutputSet

    source = small_ct(tmp_path / "ct.nii.gz")
    with pytest.raises(PermissionError):
        with OutputSet(tmp_path / "res", input_path=source):
            raise PermissionError(errno.EACCES, "Permission denied", str(source))
    with pytest.raises(Exception, match="(?i)permission is denied"):
        with OutputSet(tmp_path / "res", input_path=source) as outputs:
            raise PermissionError(errno.EACCES, "Permission denied", str(outputs.path("summary.json")))
    assert leftovers(tmp_path) == [] and not (tmp_path / "res").exists()


def test_an_out_under_a_link_that_loops_says_so(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    run = segforge("organ", str(small_ct(tmp_path / "ct.nii.gz")), "--out", str(tmp_path / "a" / "res"))
    one_line_error(run, "symbolic link that leads nowhere")


@pytest.mark.parametrize("replay", [True, False])
def test_a_held_ctrl_c_lands_after_the_block_or_is_dropped(replay):
    """signals_held(): the block is never cut short; the Ctrl-C then acts (a table rewrite in the
    batch's loop) or is dropped (a second Ctrl-C while an interrupted batch tidies up)."""
    from segforge.output_set import signals_held

    finished = []
    try:
        with signals_held(replay=replay):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished.append(True)
    except KeyboardInterrupt:
        assert replay and finished == [True]
    else:
        assert not replay and finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
