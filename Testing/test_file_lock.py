"""segforge.file_lock between real processes: held once, refused at once to a second holder
that does not wait, free again after."""
from __future__ import annotations


def test_a_file_lock_is_refused_to_a_second_holder_and_free_after(tmp_path):
    import subprocess
    import sys

    from segforge.file_lock import file_lock

    path = tmp_path / "lock"
    probe = ("import sys; from pathlib import Path; from segforge.file_lock import file_lock\n"
             "with file_lock(Path(sys.argv[1]), wait=False) as held: print(held)")
    with file_lock(path, wait=False) as held:
        assert held
        other = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
        assert other.stdout.strip() == "False", other.stderr
    again = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "True", again.stderr
