"""Interactive lesion segmentation: prompts in, a mask refined interaction by interaction.

:mod:`.prompts` turns points, boxes and scribbles given in millimetres into voxel prompts,
:mod:`.session` keeps one image's mask with undo and redo, :mod:`.backends` names the
algorithms that turn prompts into masks, and :mod:`.simulation` is the click simulation
of interactive-segmentation papers used by the tests and the benchmarks.
"""
