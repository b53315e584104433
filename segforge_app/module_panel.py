"""What the SegVessel and SegOrgan panels share: one job at a time, the Replace / Keep both
question before it starts, Cancel, and the result put where the page shows it.

A panel subclass says which inputs it checks (``check``: the question to ask when the output
already has segments of the names the job writes, else None), how it starts its module
Logic's job (``start_job``) and what it shows of the result (``done``, ending in ``show``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from segforge.errors import InputError

from .results import node_of, render_views

if TYPE_CHECKING:
    from .context import AppContext


class ModulePanel:
    """Callbacks of a module panel whose state keys all start with ``<key>_``."""

    key = ""
    #: The desktop module whose Logic runs the jobs ("SegOrgan"...): results are offered for DICOM export.
    module = ""
    #: What the input volume should be, for the message when there is none ("a CTA or MRA volume").
    volume_kind = "a volume"

    def __init__(self, context: "AppContext") -> None:
        self.context = context
        for name, value in {"output": "", "ask": None, "summary": "", "results": 0}.items():
            context.state.setdefault(self.k(name), value)

    @property
    def state(self) -> Any:
        return self.context.state

    def k(self, name: str) -> str:
        """The state key of this panel's ``name``."""
        return f"{self.key}_{name}"

    # -- inputs ------------------------------------------------------------------------------------

    def volume(self) -> Any:
        volume = node_of(self.context, self.state[self.k("volume")], "vtkMRMLScalarVolumeNode")
        if volume is None:
            raise InputError("No input volume", "the scene holds no volume, or none is chosen as input",
                             f"load {self.volume_kind} in the Data panel (a path on the server or an upload), "
                             "then choose it as the input volume")
        return volume

    def output(self) -> Any:
        """The segmentation chosen as output; None for a new one."""
        return node_of(self.context, self.state[self.k("output")], "vtkMRMLSegmentationNode")

    def check(self) -> Optional[str]:
        """Check the inputs (raising what to fix); the Replace / Keep both question to ask, or None."""
        raise NotImplementedError

    def start_job(self, on_existing: str) -> Any:
        """The module Logic's running job for the panel's inputs."""
        raise NotImplementedError

    # -- running -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Check the inputs; ask first when the output already has segments of those names."""
        if self.context.jobs.is_running(self.key):
            return
        question = self.check()
        if question:
            self.state[self.k("ask")] = question
            return
        self._start("error")

    def answer(self, choice: str) -> None:
        """The user's answer to the Replace / Keep both question ("replace", "rename" or "cancel")."""
        self.state[self.k("ask")] = None
        if choice in ("replace", "rename"):
            self._start(choice)

    def job_volume(self) -> Optional[Any]:
        """The volume the job is run on (what its result is titled after and refers to); None when
        its inputs hold none (a panel whose job may take a segment alone says so)."""
        return node_of(self.context, self.state[self.k("volume")], "vtkMRMLScalarVolumeNode")

    def _start(self, on_existing: str) -> None:
        volume = self.job_volume()
        job = self.start_job(on_existing)
        self.state[self.k("summary")] = ""
        self.context.jobs.start(self.key, job, lambda result: self._done(result, volume), self.cancelled)

    def _done(self, result: Any, volume: Any) -> None:
        """Show the result, then offer it for Export to DICOM / Send to PACS (the DICOM panel)."""
        self.done(result)
        segmentation = getattr(result, "segmentation", result)
        where = f" of {volume.GetName()}" if volume is not None else ""
        self.context.add_result(self.module, volume, result, f"{self.module}: {segmentation.GetName()}{where}")

    def cancel(self) -> None:
        self.context.jobs.cancel(self.key)

    def cancelled(self) -> None:
        self.context.refresh_nodes()

    def done(self, result: Any) -> None:
        raise NotImplementedError

    def show(self, segmentation: Any, **values: Any) -> None:
        """Put a result's ``values`` (by name) into the state, count it, and refresh the list and views.

        The node list is flushed first: the page never gets a result (nor a test its result
        count) naming a segmentation the output select and the Data panel do not list yet.
        """
        self.context.refresh_nodes()
        with self.state:
            self.state[self.k("output")] = segmentation.GetID()
            for name, value in values.items():
                self.state[self.k(name)] = value
            self.state[self.k("results")] = int(self.state[self.k("results")] or 0) + 1
        render_views(self.context)
