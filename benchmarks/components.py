"""Benchmark: 3-D connected components with ``cc3d`` (segforge.components) against scipy's
``ndimage.label``, in the same run.

The case is what made it matter: the vessel topology clean-up labels the padded box of
TotalSegmentator's thoracic CTA aorta (most of the image) several times, background
6-connected and object 26-connected. Reported: median milliseconds of each over
``--repeats`` runs, the ratio, and whether the labels are identical.

Run: ``python benchmarks/components.py [--repeats 20]``
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distance_transform import median_seconds
from vessel_vmtk import CTA_AORTA

from segforge.components import label
from segforge.image_io import read_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    box = np.pad(np.asarray(read_image(CTA_AORTA).array) != 0, 4)
    print(f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; CTA aorta box {box.shape} ({box.size:,} voxels)")
    for name, volume, connectivity in (("background, 6-connected", ~box, 6), ("object, 26-connected", box, 26)):
        structure = ndimage.generate_binary_structure(3, {6: 1, 26: 3}[connectivity])
        ours = median_seconds(lambda v=volume, c=connectivity: label(v, c), args.repeats)
        peer = median_seconds(lambda v=volume, s=structure: ndimage.label(v, s), args.repeats)
        same = np.array_equal(label(volume, connectivity)[0], ndimage.label(volume, structure)[0])
        print(f"{name}: cc3d {ours * 1e3:.1f} ms; scipy label {peer * 1e3:.1f} ms; {peer / ours:.1f}x; "
              f"identical labels: {same}")


if __name__ == "__main__":
    main()
