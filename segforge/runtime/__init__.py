"""What the workflows share to run models, below all of them: the device choice
(:mod:`.device`), the loaded-model cache (:mod:`.model_cache`), TorchScript loading and
normalisation (:mod:`.torchscript`) and MONAI's tiled inference with progress
(:mod:`.sliding_window`).

Nothing here imports a workflow, the worker, the MRML bridge or a front end, and importing
this package imports nothing heavy (torch is imported inside the functions).
"""
