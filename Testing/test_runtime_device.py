"""The one device choice of every torch path (segforge.runtime.device.choose_device).

No GPU is needed: torch's CUDA queries are replaced by what a driver would answer.
"""
from __future__ import annotations

import pytest

from segforge.errors import InputError
from segforge.runtime.device import choose_device

torch = pytest.importorskip("torch")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpu_with_3_gib_free(monkeypatch):
    """A GPU with 3 GiB of 24 free; records the devices whose memory was asked for."""
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info",
                        lambda device=None: asked.append(str(device)) or (3 << 30, 24 << 30))
    return asked


def test_cpu_is_always_the_cpu(gpu_with_3_gib_free):
    assert choose_device("cpu") == ("cpu", None)
    assert choose_device("cpu", 100.0) == ("cpu", None)
    assert gpu_with_3_gib_free == [], "the CPU needs no question to the driver"


def test_without_a_gpu_auto_is_the_cpu_and_a_gpu_request_is_refused(no_gpu):
    assert choose_device() == ("cpu", None)
    assert choose_device("auto", 4.0) == ("cpu", None)
    for requested in ("cuda", "cuda:1"):
        with pytest.raises(InputError, match="GPU was asked for") as caught:
            choose_device(requested)
        assert "CPU or auto" in caught.value.todo


def test_without_a_memory_need_any_gpu_will_do(gpu_with_3_gib_free):
    assert choose_device() == ("cuda", None)
    assert choose_device("auto") == ("cuda", None)
    assert choose_device("cuda:1") == ("cuda:1", None)
    assert gpu_with_3_gib_free == [], "free memory is asked for only when a model says what it needs"


def test_a_memory_need_is_checked_before_starting(gpu_with_3_gib_free):
    device, warning = choose_device("auto", 4.0)
    assert device == "cpu" and "3.0 GiB free" in warning and "4.0 GiB" in warning
    with pytest.raises(InputError, match="Not enough GPU memory") as caught:
        choose_device("cuda:0", 4.0)
    assert "4.0 GiB" in caught.value.why
    assert choose_device("auto", 2.0) == ("cuda", None)
    assert choose_device("cuda:0", 3.0) == ("cuda:0", None)
    assert gpu_with_3_gib_free[-1] == "cuda:0"


def test_every_torch_path_uses_this_choice():
    """No second copy of the rule: the workflows and the worker call choose_device."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in ("segforge/vessel/slabs.py", "segforge/vessel/deep_model.py", "segforge/organ/pipeline.py",
                 "segforge/interactive/nninteractive_backend.py", "segforge/worker/torchscript.py"):
        text = (root / path).read_text(encoding="utf-8")
        assert "from ..runtime.device import choose_device" in text, path
        assert "cuda.is_available" not in text, f"{path} decides on a device itself"
