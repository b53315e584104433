"""A lasso with the nnInteractive backend: the package takes it as the scribbles it knows (the
inside positive, the slice around it negative), and the session keeps the lasso's slice exact.

The model is the tiny random-weight nnInteractive folder the backend's own tests build
(Testing/nninteractive_helpers.py): what its network predicts means nothing, so the test
checks what must hold whatever it predicts.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nnInteractive.inference.inference_session")
pytest.importorskip("torch")

from nninteractive_helpers import build_tiny_model_folder

from segforge.image import Image
from segforge.interactive import nninteractive_backend as nni
from segforge.interactive.lasso import lasso_prompt
from segforge.interactive.session import InteractiveSession

SHAPE_KJI = (24, 48, 40)
#: A rectangle in slice k = 12, its corners between voxel centres: it encloses j 15..30, i 10..27.
RECTANGLE_JI = np.array([(14.5, 9.5), (30.5, 9.5), (30.5, 27.5), (14.5, 27.5)])


def test_nninteractive_takes_a_lasso_and_its_slice_stays_exact(tmp_path, monkeypatch):
    monkeypatch.setenv(nni.MODEL_ENV, str(build_tiny_model_folder(tmp_path / "nnInteractive_v1.0",
                                                                  patch_size=(24, 48, 40))))
    array = np.random.default_rng(0).normal(100.0, 40.0, SHAPE_KJI).astype(np.float32)
    array[6:18, 12:34, 8:30] += 120
    angle = np.deg2rad(25)
    direction = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    image = Image(array, spacing=(0.8, 0.7, 2.5), origin_lps=(-30.0, 12.0, 40.0), direction_lps=direction)
    kji = np.c_[np.full(4, 12.0), RECTANGLE_JI]
    corners = (np.c_[kji[:, ::-1], np.ones(4)] @ image.ijk_to_lps().T)[:, :3]
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    session.interact(lasso_prompt(corners))
    inside = np.zeros(SHAPE_KJI[1:], bool)
    inside[15:31, 10:28] = True
    np.testing.assert_array_equal(session.mask[12] != 0, inside)  # its bounding box is the rectangle itself
    lassoed = session.mask.copy()
    session.interact(lasso_prompt(corners, positive=False))
    assert not session.mask[12][inside].any()
    session.undo()
    np.testing.assert_array_equal(session.mask, lassoed)
