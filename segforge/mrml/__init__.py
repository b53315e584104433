"""The MRML bridge: Slicer nodes <-> the engine's plain values.

The only part of SegForge that imports ``slicer`` (never ``qt``, ``ctk`` or
``slicer.app``), so it works in desktop Slicer and headless on the ``slicer-core`` wheel.
Volumes become :class:`~segforge.image.Image` in world coordinates; label arrays become
named segments; centerlines become markups curves with a Radius measurement; meshes
become models; result rows become tables; :mod:`.storage` saves and loads them all.
"""
from .markups import (control_points_lps, curve_from_polyline, point_list_from_points, point_measurement,
                      set_point_measurement)
from .models import model_from_polydata
from .scene import HeadlessSlicer, batch_processing, create_headless_slicer, get_scene, is_inside_slicer
from .segments import (SegmentSpec, closed_surface, create_closed_surfaces, labels_from_segments,
                       mask_from_segment, new_segmentation_node, segment_ids_by_name, segment_voxel_count,
                       set_segment_mask, terminology_entry, write_label_segments)
from .storage import (load_markups, load_model, load_scene_bundle, load_segmentation, load_table, load_volume,
                      save_node, save_scene_bundle)
from .tables import rows_from_table, table_from_columns, table_from_rows
from .volumes import image_from_volume_node, volume_grid, volume_node_from_image, world_ijk_to_ras

__all__ = [
    "HeadlessSlicer", "batch_processing", "create_headless_slicer", "get_scene", "is_inside_slicer",
    "image_from_volume_node", "volume_node_from_image", "volume_grid", "world_ijk_to_ras",
    "SegmentSpec", "terminology_entry", "new_segmentation_node", "write_label_segments", "set_segment_mask",
    "mask_from_segment", "segment_voxel_count", "labels_from_segments", "segment_ids_by_name", "create_closed_surfaces",
    "closed_surface",
    "curve_from_polyline", "point_list_from_points", "set_point_measurement", "point_measurement", "control_points_lps",
    "model_from_polydata",
    "table_from_rows", "table_from_columns", "rows_from_table",
    "save_node", "load_volume", "load_segmentation", "load_markups", "load_model", "load_table",
    "save_scene_bundle", "load_scene_bundle",
]
