"""Cohorts: one workflow over many cases on Dask distributed (``segforge batch``).

From Python (the same batch as the command line)::

    from segforge.batch import ClusterSettings, discover, run_batch
    from segforge.organ.parameters import OrganParameters

    cohort = discover("cts/")                       # a folder of volumes, a .csv/.tsv manifest or a DICOM tree
    summary = run_batch("organ", cohort.cases, "results/", OrganParameters(structures=("lungs",)),
                        cluster=ClusterSettings(workers=2))
    print(summary.line())   # "N succeeded, N failed, N skipped; failures listed in results/failures.csv"

A PACS query as the cohort (each matching image series a case, fetched by the worker that runs
it; seg.dcm and sr.dcm written, and with ``store=True`` stored back, never twice)::

    cohort = pacs_cohort({"PatientID": "12345"}, SeriesRule(modality="CT"))   # the PACS of pacs_config()
    summary = run_batch("organ", cohort.cases, "results/", parameters, store=True, left_out=cohort.left_out)

Each case is written to ``results/cases/<case id>/`` all or nothing, with ``run_record.json``;
the cohort table is ``results/cohort_<workflow>.csv`` and ``.parquet``. ``start_batch`` runs the
same in the background, with progress and Cancel (Slicer's console). See docs/batch.md.
"""
from __future__ import annotations

from .background import BatchJob, start_batch
from .cases import Case, Cohort, SeriesRule, discover
from .pacs_cases import pacs_cohort
from .runner import BatchSummary, ClusterSettings, run_batch

__all__ = ["BatchJob", "BatchSummary", "Case", "ClusterSettings", "Cohort", "SeriesRule", "discover", "pacs_cohort",
           "run_batch", "start_batch"]
