"""A PACS over DIMSE (pynetdicom): C-ECHO, C-FIND (study, series, image), C-GET to fetch a
series, C-STORE to send SegForge's SEG and SR.

Why C-GET and not C-MOVE: C-GET brings the images back on our own association, so SegForge
needs no listening port, no firewall opening and no entry for its port in the PACS (C-MOVE
would make the PACS call us back). The PACS must know our AE title (``calling_ae``) and allow
it to query and retrieve; that is the PACS administrator's one step.

Each operation opens one association and releases it. Failures are one-line
:class:`~segforge.errors.InputError`\\ s: the PACS down (nothing listens at host:port), no
answer in time, the association refused (an AE title the PACS does not know), an operation
the PACS refuses (its status said in words), a series it does not hold. A fetch writes only
the files of instances it received whole, and says so when the PACS sent fewer than the
series holds; the caller's output set keeps a partial fetch out of sight.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import pydicom
from pydicom.dataset import Dataset

from ..errors import InputError
from .pacs_base import PacsClient
from .pacs_config import ENV_CALLED_AE, ENV_CALLING_AE, ENV_HOST, ENV_PORT, ENV_TIMEOUT, PacsConfig, pacs_config

#: What a study and a series query ask the PACS to return (keyword -> empty: "send it").
STUDY_KEYS = ("StudyInstanceUID", "StudyDate", "PatientID", "PatientName", "ModalitiesInStudy", "StudyDescription",
              "AccessionNumber")
SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
               "NumberOfSeriesRelatedInstances")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PENDING = (0xFF00, 0xFF01)
#: C-STORE statuses that mean the PACS kept the instance (0xB0xx: kept, with a warning).
_STORED = (0x0000, 0xB000, 0xB007, 0xB006)

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # its errors are ours to say, in one line


class DimsePacs(PacsClient):
    """A DIMSE connection to one PACS (Study Root query/retrieve)."""

    def __init__(self, config: Optional[PacsConfig] = None) -> None:
        self.config = config or pacs_config()
        if self.config.protocol != "dimse":
            raise InputError("The PACS is not configured for DIMSE", f"the settings name {self.config!r}",
                             "use open_pacs(), which picks the protocol the settings name")

    # -- C-ECHO --------------------------------------------------------------------------------
    def echo(self) -> None:
        """Check that the PACS answers and accepts us (C-ECHO); InputError saying why not."""
        from pynetdicom.sop_class import Verification

        with self._association("check the PACS (C-ECHO)", [(Verification, None)]) as assoc:
            status = assoc.send_c_echo()
            self._check_status("check the PACS (C-ECHO)", status, (0x0000,), assoc)

    # -- C-FIND --------------------------------------------------------------------------------
    def find_studies(self, filters: Optional[Mapping[str, str]] = None) -> list[dict[str, str]]:
        query = _query("STUDY", STUDY_KEYS, filters or {})
        return self._find("search the PACS for studies", query)

    def find_series(self, study_uid: str) -> list[dict[str, str]]:
        query = _query("SERIES", SERIES_KEYS, {"StudyInstanceUID": study_uid})
        found = self._find(f"list the series of study {study_uid}", query)
        if not found:
            raise InputError(f"The PACS holds no study {study_uid}", f"{self.config.address} answered with no series",
                             "check the Study Instance UID (segforge pacs find lists the studies)")
        return found

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        return [i["SOPInstanceUID"] for i in self._instances(study_uid, series_uid)]

    def holds_instance(self, dataset: pydicom.Dataset) -> bool:
        found = self._instances(str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID),
                                str(dataset.SOPInstanceUID))
        return any(i["SOPInstanceUID"] == str(dataset.SOPInstanceUID) for i in found)

    def _instances(self, study_uid: str, series_uid: str, sop_uid: str = "") -> list[dict[str, str]]:
        query = _query("IMAGE", ("SOPInstanceUID", "SOPClassUID"), {"StudyInstanceUID": study_uid,
                                                                     "SeriesInstanceUID": series_uid,
                                                                     "SOPInstanceUID": sop_uid})
        return self._find(f"list the instances of series {series_uid}", query)

    def _find(self, what: str, query: Dataset) -> list[dict[str, str]]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FindModel

        found = []
        with self._association(what, [(FindModel, None)]) as assoc:
            for status, identifier in assoc.send_c_find(query, FindModel):
                code = self._check_status(what, status, (0x0000, *_PENDING), assoc)
                if code in _PENDING and identifier is not None:
                    found.append(_plain(identifier))
        return found

    # -- C-GET ---------------------------------------------------------------------------------
    def fetch_series(self, study_uid: str, series_uid: str, folder: str | os.PathLike) -> list[Path]:
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GetModel

        what = f"fetch series {series_uid}"
        instances = self._instances(study_uid, series_uid)
        if not instances:
            raise InputError(f"The PACS sent no images of series {series_uid}", "the PACS lists no instance of it "
                             "(a series or study it does not hold, or an empty one)",
                             "check the study and series UIDs (segforge pacs find)")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        received: list[Path] = []

        def on_store(event: Any) -> int:
            uid = str(event.request.AffectedSOPInstanceUID)
            if not _UID.match(uid):
                return 0xC211  # not a UID: never a file name of ours
            path = folder / f"{uid}.dcm"
            path.write_bytes(event.encoded_dataset())
            received.append(path)
            return 0x0000

        classes = sorted({i["SOPClassUID"] for i in instances if i.get("SOPClassUID")})
        contexts = [(GetModel, None), *((uid, None) for uid in classes)]
        roles = [build_role(uid, scp_role=True) for uid in classes]
        query = _query("SERIES", (), {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid})
        with self._association(what, contexts, roles, [(evt.EVT_C_STORE, on_store)]) as assoc:
            for status, _ in assoc.send_c_get(query, GetModel):
                self._check_status(what, status, (0x0000, *_PENDING, 0xB000), assoc)
        wanted = {i["SOPInstanceUID"] for i in instances}
        got = {p.stem for p in received}
        if not wanted <= got:
            raise InputError(f"Could not {what}", f"the PACS sent {len(got & wanted)} of its {len(wanted)} "
                             "instances", "try again; if it persists check the PACS's log (a C-GET sub-operation "
                             "failed)")
        return sorted(received)

    # -- C-STORE -------------------------------------------------------------------------------
    def _send(self, path: str, dataset: pydicom.Dataset) -> None:
        what = f"store {Path(path).name}"
        syntax = str(getattr(dataset.file_meta, "TransferSyntaxUID", "") or "") if hasattr(dataset, "file_meta") else ""
        with self._association(what, [(str(dataset.SOPClassUID), [syntax] if syntax else None)]) as assoc:
            status = assoc.send_c_store(dataset)
            self._check_status(what, status, _STORED, assoc)

    # -- the association -----------------------------------------------------------------------
    def _association(self, what: str, contexts: Iterable[tuple[str, Optional[list[str]]]], roles: Any = None,
                     handlers: Any = None) -> "_Association":
        from pynetdicom import AE
        from pynetdicom.presentation import DEFAULT_TRANSFER_SYNTAXES

        config = self.config
        contexts = list(contexts)
        ae = AE(ae_title=config.calling_ae)
        for name in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
            setattr(ae, name, config.timeout_s)
        for abstract, syntaxes in contexts:
            ae.add_requested_context(abstract, syntaxes or list(DEFAULT_TRANSFER_SYNTAXES))
        started = time.monotonic()
        assoc = ae.associate(config.host, config.port, ae_title=config.called_ae, ext_neg=roles or None,
                             evt_handlers=handlers or None)
        if not assoc.is_established:
            self._reachable(what)  # down, or slow: pynetdicom says neither
        # a rejection can reach pynetdicom as an abort (the PACS closes at once after its A-ASSOCIATE-RJ)
        quick = time.monotonic() - started < 0.9 * config.timeout_s
        if assoc.is_rejected or (not assoc.is_established and quick):
            raise InputError(f"Could not {what}", f"the PACS at {config.address} refused the association (it does "
                             f"not know our AE title {config.calling_ae!r}, or is not {config.called_ae!r})",
                             f"check {ENV_CALLED_AE} and {ENV_CALLING_AE}; the PACS must list {config.calling_ae!r} "
                             "among its modalities")
        if not assoc.is_established:
            raise InputError(f"Could not {what}", f"the PACS at {config.address} did not accept an association "
                             f"within {config.timeout_s:g} s", f"try again later, or allow more time with "
                             f"{ENV_TIMEOUT}")
        accepted = {str(context.abstract_syntax) for context in assoc.accepted_contexts}
        refused = [str(abstract) for abstract, _ in contexts if str(abstract) not in accepted]
        if refused:  # pynetdicom would raise a bare ValueError at the first message of that kind
            assoc.release()
            raise InputError(f"Could not {what}", f"the PACS at {config.address} does not accept SOP class "
                             f"{', '.join(refused)} from us (no presentation context: an older PACS may not store "
                             "DICOM SEG or SR)", "ask the PACS's administrator to accept it, or use the PACS's "
                             "DICOMweb service instead")
        return _Association(assoc, self, what)

    def _reachable(self, what: str) -> None:
        """InputError when nothing listens at host:port (asked only after an association failed: a
        bare connection with no association would hold one of the PACS's threads until its own
        timeout)."""
        config = self.config
        try:
            with socket.create_connection((config.host, config.port), timeout=config.timeout_s):
                pass
        except socket.timeout:
            raise InputError(f"Could not {what}", f"the PACS at {config.host}:{config.port} did not answer within "
                             f"{config.timeout_s:g} s", f"try again later, or allow more time with "
                             f"{ENV_TIMEOUT}") from None
        except OSError:
            raise InputError(f"Could not {what}", f"the PACS at {config.host}:{config.port} cannot be reached (it is "
                             "down, or the address is wrong)", f"check that the PACS is running, {ENV_HOST} and "
                             f"{ENV_PORT}") from None

    def _check_status(self, what: str, status: Optional[Dataset], accepted: tuple[int, ...], assoc: Any) -> int:
        """The status code when ``accepted``; InputError otherwise (an empty status: the PACS ended
        the association, or sent nothing in time)."""
        code = getattr(status, "Status", None) if status is not None else None
        quick = time.monotonic() - assoc.segforge_started < 0.9 * self.config.timeout_s
        if code is None and (quick or not assoc.is_established):  # no valid answer, and not for want of time
            ours = self.config.calling_ae
            raise InputError(f"Could not {what}", f"the PACS at {self.config.address} gave no valid answer (it may "
                             f"not allow our AE title {ours!r} to do this)", f"ask the PACS administrator to allow "
                             f"{ours!r} to query, retrieve and store (the PACS's log says why)")
        if code is None:
            raise InputError(f"Could not {what}", f"the PACS at {self.config.address} did not answer within "
                             f"{self.config.timeout_s:g} s",
                             f"try again later, or allow more time with {ENV_TIMEOUT}")
        code = int(code)
        if code in accepted:
            return code
        if code in (0x0122, 0x0124, 0xA801):
            why = "it does not allow this for our AE title"
            todo = f"ask the PACS administrator to allow {self.config.calling_ae!r} to query, retrieve and store"
        elif 0xA700 <= code <= 0xA7FF:
            why, todo = "it is out of resources (its disk or memory)", "ask the PACS administrator; try again later"
        else:
            comment = str(getattr(status, "ErrorComment", "") or "")
            why = f"it answered status 0x{code:04X}" + (f" ({comment})" if comment else "")
            todo = "check the PACS's log; nothing partial was kept by SegForge"
        raise InputError(f"Could not {what}", f"the PACS at {self.config.address} refused: {why}", todo)


class _Association:
    """An established association, released (or aborted) when the block ends."""

    def __init__(self, assoc: Any, pacs: DimsePacs, what: str) -> None:
        self.assoc, self.pacs, self.what = assoc, pacs, what

    def __enter__(self) -> Any:
        self.assoc.segforge_started = time.monotonic()  # when the operation began: a timeout or a refusal
        return self.assoc

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if self.assoc.is_established:
            self.assoc.release() if kind is None else self.assoc.abort()


def _query(level: str, keys: Iterable[str], filters: Mapping[str, str]) -> Dataset:
    """A C-FIND / C-GET identifier: the level, the keys to return (empty) and the filters."""
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword in keys:
        setattr(query, keyword, "")
    for keyword, value in filters.items():
        if pydicom.datadict.tag_for_keyword(keyword) is None:
            raise InputError(f"{keyword!r} is not a DICOM attribute", "a PACS query filters on DICOM keywords",
                             "use keywords such as PatientID, StudyDate, AccessionNumber, ModalitiesInStudy")
        setattr(query, keyword, value)
    return query


def _plain(identifier: Dataset) -> dict[str, str]:
    """A C-FIND answer as keyword -> text (person names as text, several values joined by \\)."""
    result = {}
    for element in identifier:
        if element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle") or not element.keyword:
            continue
        value = element.value
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            result[element.keyword] = "\\".join(str(v) for v in value)
        else:
            result[element.keyword] = "" if value is None else str(value)
    return result


__all__ = ["DimsePacs"]
