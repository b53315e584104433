"""The SegForge demo: the vessel workflow on the bundled CTA, as Slicer would run it.

A headless Slicer scene (the real MRML classes of the ``slicer-core`` wheel) gets the CTA
as a volume node; SegVesselLogic sends it to a background worker process and writes the
vessel mask back as a segment. The result is saved as a ``.mrb`` scene that opens in
3D Slicer, a ``.seg.nrrd`` segmentation and a PNG snapshot.

Run ``make demo`` (or ``python scripts/demo.py --out out/demo``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "SegVessel")]

from segforge.cli.progress_bar import progress_bar  # noqa: E402
from segforge.image_io import read_volume  # noqa: E402
from segforge.mrml import (create_closed_surfaces, create_headless_slicer, mask_from_segment,  # noqa: E402
                           save_node, save_scene_bundle, segment_ids_by_name, volume_node_from_image)
from segforge.snapshot import write_snapshot  # noqa: E402
from segforge.vessel import VesselMaskParameters  # noqa: E402
from SegVesselLib import SegVesselLogic  # noqa: E402

SAMPLE_CTA = REPO / "Resources" / "SampleData" / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz"


def run_demo(out: Path, cta_path: Path = SAMPLE_CTA) -> dict[str, Path]:
    """Segment the vessels of ``cta_path`` and write the scene, segmentation and snapshot to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    app = create_headless_slicer(install=True)
    try:
        image = read_volume(cta_path)
        volume = volume_node_from_image(image, "CTA")
        logic = SegVesselLogic()
        started = time.perf_counter()
        with progress_bar("vessels") as report:
            segmentation = logic.segment_vessels(volume, parameters=VesselMaskParameters.for_cta(), progress=report)
        seconds = time.perf_counter() - started
        create_closed_surfaces(segmentation)
        vessels = mask_from_segment(segmentation, segment_ids_by_name(segmentation)["Vessels"][0], volume)
        files = {"scene": save_scene_bundle(out / "segforge_demo.mrb", app.scene),
                 "segmentation": save_node(segmentation, out / "vessels.seg.nrrd"),
                 "snapshot": write_snapshot(image, vessels, out / "vessels.png")}
        logic.worker.close()
    finally:
        app.close()
    print(f"vessel mask: {int(vessels.array.sum())} voxels in {seconds:.1f} s")
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo", help="folder for the results")
    parser.add_argument("--input", type=Path, default=SAMPLE_CTA, help="a CTA volume file (default: bundled)")
    args = parser.parse_args()
    run_demo(args.out, args.input)


if __name__ == "__main__":
    main()
