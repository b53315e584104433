"""Run trained nnU-Net v2 model folders in the engine, with the labels nnU-Net itself gives.

A model folder holds ``dataset.json``, ``plans.json`` and ``fold_N/checkpoint_final.pth``.
The pipeline follows nnunetv2 2.8.1's ``nnUNetPredictor`` step by step (preprocessing, the
sliding window with its float16 accumulation, the export with its float16 argmax) but
never holds a classes x full-resolution array, and does not import nnunetv2: the network
is built from the plans with ``dynamic_network_architectures`` (the ``organ`` extra).

- :mod:`.plans`: read the folder into a typed :class:`~.plans.NnUNetModel`.
- :mod:`.network`: build the network and load the folds' weights.
- :mod:`.preprocess`: transpose, crop, normalise, resample to the model's spacing.
- :mod:`.sliding_window`: tile the image, run the folds, average the logits.
- :mod:`.export`: logits back to labels on the input's grid, slab by slab.
- :mod:`.predict`: :func:`~.predict.predict_labels`, the whole run on a :class:`segforge.image.Image`.
"""
from __future__ import annotations

from .plans import NnUNetModel, read_model
from .predict import predict_labels

__all__ = ["NnUNetModel", "predict_labels", "read_model"]
