#-----------------------------------------------------------------------------
# The SegForge engine (the pure-Python package `segforge/`) inside the Slicer extension.
#
# Included from the top-level CMakeLists.txt after `include(${Slicer_USE_FILE})`.
#
# The package is copied next to the scripted modules (Slicer_QTSCRIPTEDMODULES_LIB_DIR).
# Slicer puts that folder on sys.path for the modules, so `import segforge` works in
# Slicer's Python; a worker started with PythonSlicer gets the same folder on its
# PYTHONPATH from whoever starts it (the folder that holds segforge/).
#
# Every file is listed by hand, never globbed: Testing/test_packaging.py fails when a
# file under segforge/ (or a model catalog under Resources/Models/) is missing here,
# so the extension cannot silently ship without it.
#-----------------------------------------------------------------------------

get_filename_component(_segforge_source_dir "${CMAKE_CURRENT_LIST_DIR}/.." REALPATH)

# Every segforge/**/*.py, relative to the repository root.
set(SEGFORGE_ENGINE_PYTHON_SCRIPTS
  segforge/__init__.py
  segforge/batch/__init__.py
  segforge/batch/background.py
  segforge/batch/cases.py
  segforge/batch/gpu_plugin.py
  segforge/batch/pacs_cases.py
  segforge/batch/resume.py
  segforge/batch/run_case.py
  segforge/batch/runner.py
  segforge/batch/table.py
  segforge/batch/workflows.py
  segforge/catalog/__init__.py
  segforge/catalog/cache.py
  segforge/catalog/catalog.py
  segforge/catalog/download.py
  segforge/cli/__init__.py
  segforge/cli/app_cmd.py
  segforge/cli/batch_cmd.py
  segforge/cli/dicom_option.py
  segforge/cli/input_options.py
  segforge/cli/interactive_cmd.py
  segforge/cli/main.py
  segforge/cli/models_cmd.py
  segforge/cli/organ_cmd.py
  segforge/cli/output_folder.py
  segforge/cli/pacs_cmd.py
  segforge/cli/progress_bar.py
  segforge/cli/serve_cmd.py
  segforge/cli/train_cmd.py
  segforge/cli/vessel_cmd.py
  segforge/csv_table.py
  segforge/dicom/__init__.py
  segforge/dicom/codes.py
  segforge/dicom/derived.py
  segforge/dicom/dimse.py
  segforge/dicom/measurements.py
  segforge/dicom/pacs.py
  segforge/dicom/pacs_base.py
  segforge/dicom/pacs_config.py
  segforge/dicom/results.py
  segforge/dicom/scene_export.py
  segforge/dicom/seg_export.py
  segforge/dicom/seg_import.py
  segforge/dicom/source.py
  segforge/dicom/sr_export.py
  segforge/dicom/store_results.py
  segforge/dicom_series.py
  segforge/chart_png.py
  segforge/components.py
  segforge/distance.py
  segforge/file_lock.py
  segforge/errors.py
  segforge/forms.py
  segforge/image.py
  segforge/image_checks.py
  segforge/image_io.py
  segforge/interactive/__init__.py
  segforge/interactive/backends.py
  segforge/interactive/evaluation.py
  segforge/interactive/lasso.py
  segforge/interactive/nninteractive_backend.py
  segforge/interactive/prompts.py
  segforge/interactive/random_walker.py
  segforge/interactive/replay.py
  segforge/interactive/session.py
  segforge/interactive/simulation.py
  segforge/label_names.py
  segforge/mesh.py
  segforge/mrml/__init__.py
  segforge/mrml/convert.py
  segforge/mrml/dicom_source.py
  segforge/mrml/markups.py
  segforge/mrml/models.py
  segforge/mrml/plots.py
  segforge/mrml/python_dependencies.py
  segforge/mrml/scene.py
  segforge/mrml/segments.py
  segforge/mrml/storage.py
  segforge/mrml/tables.py
  segforge/mrml/transforms.py
  segforge/mrml/volumes.py
  segforge/organ/__init__.py
  segforge/organ/body.py
  segforge/organ/bones.py
  segforge/organ/input_checks.py
  segforge/organ/labels.py
  segforge/organ/lungs.py
  segforge/organ/models.py
  segforge/organ/morphology.py
  segforge/organ/nnunet/__init__.py
  segforge/organ/nnunet/export.py
  segforge/organ/nnunet/network.py
  segforge/organ/nnunet/plans.py
  segforge/organ/nnunet/predict.py
  segforge/organ/nnunet/preprocess.py
  segforge/organ/nnunet/sliding_window.py
  segforge/organ/outputs.py
  segforge/organ/parameters.py
  segforge/organ/pipeline.py
  segforge/organ/statistics.py
  segforge/organ/terminology.py
  segforge/organ/tissues.py
  segforge/organ/wire.py
  segforge/orientation.py
  segforge/output_set.py
  segforge/polydata_io.py
  segforge/progress.py
  segforge/resources.py
  segforge/runtime/__init__.py
  segforge/runtime/device.py
  segforge/runtime/model_cache.py
  segforge/runtime/sliding_window.py
  segforge/runtime/torchscript.py
  segforge/segment_input.py
  segforge/segmentation_file.py
  segforge/training/__init__.py
  segforge/training/config.py
  segforge/training/curve.py
  segforge/training/export.py
  segforge/training/inputs.py
  segforge/training/install.py
  segforge/training/label_checks.py
  segforge/training/losses.py
  segforge/training/run.py
  segforge/training/simple_points.py
  segforge/training/skeleton.py
  segforge/training/synthetic_data.py
  segforge/training/thinning.py
  segforge/training/train.py
  segforge/vessel/__init__.py
  segforge/vessel/coarse.py
  segforge/vessel/cross_sections.py
  segforge/vessel/deep_model.py
  segforge/vessel/diameter_plot.py
  segforge/vessel/endpoints.py
  segforge/vessel/minimal_path.py
  segforge/vessel/filters.py
  segforge/vessel/frames.py
  segforge/vessel/graph.py
  segforge/vessel/hessian.py
  segforge/vessel/lumen_edge.py
  segforge/vessel/mask.py
  segforge/vessel/mask_step.py
  segforge/vessel/measure_step.py
  segforge/vessel/metrics.py
  segforge/vessel/outputs.py
  segforge/vessel/parameters.py
  segforge/vessel/pipeline.py
  segforge/vessel/radius.py
  segforge/vessel/sampling.py
  segforge/vessel/skeleton.py
  segforge/vessel/slabs.py
  segforge/vessel/stenosis.py
  segforge/vessel/straighten.py
  segforge/vessel/subvoxel.py
  segforge/vessel/synthetic.py
  segforge/vessel/thick.py
  segforge/vessel/topology.py
  segforge/vessel/tree.py
  segforge/vessel/vesselness.py
  segforge/vessel/vmtk_centerlines.py
  segforge/volume_input.py
  segforge/worker/__init__.py
  segforge/worker/client.py
  segforge/worker/crop.py
  segforge/worker/interactive_client.py
  segforge/worker/interactive_tasks.py
  segforge/worker/jobs.py
  segforge/worker/module_job.py
  segforge/worker/protocol.py
  segforge/worker/server.py
  segforge/worker/tasks.py
  segforge/worker/thread_job.py
  segforge/worker/torchscript.py
  segforge/worker/training_task.py
)

# Data files the engine reads through segforge.resources.resource_path(), relative to the
# repository root. Each Resources/<path> is installed as segforge/resources/<path>, the
# place resource_path() looks in an installed engine (a wheel does the same, see pyproject.toml).
set(SEGFORGE_ENGINE_RESOURCES
  Resources/Models/catalog.json
  Resources/Models/catalog.schema.json
  Resources/Models/segforge-vessel-starter.pt
  Resources/Terminology/structures.json
  Resources/requirements.txt
  )

#-----------------------------------------------------------------------------
# Python sources: copied into the build tree (so Slicer can run from it), byte-compiled,
# and installed with the rest of the scripted modules.
ctkMacroCompilePythonScript(
  TARGET_NAME SegForgeEngine
  SCRIPTS "${SEGFORGE_ENGINE_PYTHON_SCRIPTS}"
  SOURCE_DIR ${_segforge_source_dir}
  DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}
  INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}
  NO_INSTALL_SUBDIR
  )

#-----------------------------------------------------------------------------
# Data files: Resources/<path> -> segforge/resources/<path>, in the build tree and installed.
foreach(_segforge_resource IN LISTS SEGFORGE_ENGINE_RESOURCES)
  file(RELATIVE_PATH _segforge_relative "${_segforge_source_dir}/Resources"
    "${_segforge_source_dir}/${_segforge_resource}")
  get_filename_component(_segforge_relative_dir "${_segforge_relative}" DIRECTORY)
  configure_file(
    "${_segforge_source_dir}/${_segforge_resource}"
    "${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/segforge/resources/${_segforge_relative}"
    COPYONLY
    )
  install(
    FILES "${_segforge_source_dir}/${_segforge_resource}"
    DESTINATION "${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/segforge/resources/${_segforge_relative_dir}"
    COMPONENT RuntimeLibraries
    )
endforeach()
