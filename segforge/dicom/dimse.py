"""A PACS over DIMSE (pynetdicom): C-ECHO, C-FIND (study, series, image), C-GET or C-MOVE to
fetch a series, C-STORE to send SegForge's SEG and SR.

Why C-GET by default: it brings the images back on our own association, so SegForge needs no
listening port, no firewall opening and no entry for its port in the PACS. The PACS must know
our AE title (``calling_ae``) and allow it to query and retrieve; that is the PACS
administrator's one step. C-MOVE (``fetch="move"``) is for a PACS that offers no C-GET: the
PACS opens its own association to the destination its modality entry names, so SegForge
listens, only while it fetches, with a Storage SCP on the configured port, takes only the
instances of the series asked for, into a temporary folder beside the target, and moves them
in only when every instance the C-FIND listed has arrived.

Each operation opens one association and releases it. Failures are one-line
:class:`~segforge.errors.InputError`\\ s: the PACS down (nothing listens at host:port), no
answer in time, the association refused (an AE title the PACS does not know), an operation
the PACS refuses (its status said in words), a series it does not hold. A fetch writes only
the files of instances it received whole, and says so when the PACS sent fewer than the
series holds; the caller's output set keeps a partial fetch out of sight (a C-MOVE writes
nothing into the target at all unless the series came whole).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import pydicom
from pydicom.dataset import Dataset

from ..errors import InputError
from ..file_lock import file_lock
from .pacs_base import PacsClient
from .pacs_config import (ENV_CALLED_AE, ENV_CALLING_AE, ENV_FETCH, ENV_HOST, ENV_MOVE_AE, ENV_MOVE_BIND,
                          ENV_MOVE_PORT, ENV_PORT, ENV_TIMEOUT, PacsConfig, pacs_config)

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

    # -- C-GET or C-MOVE ------------------------------------------------------------------------
    def fetch_series(self, study_uid: str, series_uid: str, folder: str | os.PathLike) -> list[Path]:
        what = f"fetch series {series_uid}"
        instances = self._instances(study_uid, series_uid)
        if not instances:
            raise InputError(f"The PACS sent no images of series {series_uid}", "the PACS lists no instance of it "
                             "(a series or study it does not hold, or an empty one)",
                             "check the study and series UIDs (segforge pacs find)")
        wanted = {i["SOPInstanceUID"] for i in instances}
        classes = sorted({i["SOPClassUID"] for i in instances if i.get("SOPClassUID")})
        query = _query("SERIES", (), {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid})
        if self.config.fetch == "move":
            return self._move(what, query, wanted, classes, Path(folder))
        return self._get(what, query, wanted, classes, Path(folder))

    def _get(self, what: str, query: Dataset, wanted: set[str], classes: list[str], folder: Path) -> list[Path]:
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GetModel

        folder.mkdir(parents=True, exist_ok=True)
        received: list[Path] = []
        contexts = [(GetModel, None), *((uid, None) for uid in classes)]
        roles = [build_role(uid, scp_role=True) for uid in classes]
        handler = (evt.EVT_C_STORE, _store_handler(folder, None, received))
        with self._association(what, contexts, roles, [handler]) as assoc:
            for status, _ in assoc.send_c_get(query, GetModel):
                self._check_status(what, status, (0x0000, *_PENDING, 0xB000), assoc)
        got = {p.stem for p in received}
        if not wanted <= got:
            raise InputError(f"Could not {what}", f"the PACS sent {len(got & wanted)} of its {len(wanted)} "
                             "instances", "try again; if it persists check the PACS's log (a C-GET sub-operation "
                             "failed)")
        return sorted(received)

    def _move(self, what: str, query: Dataset, wanted: set[str], classes: list[str], folder: Path) -> list[Path]:
        """The series by C-MOVE to our destination AE title: received by a Storage SCP that lives
        as long as the C-MOVE, into a temporary folder beside ``folder``, moved in whole."""
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MoveModel

        config = self.config
        with _port_turn(config.move_port), contextlib.ExitStack() as cleanup:
            try:  # beside the target: the same file system, so moving in is a rename
                folder.parent.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.moving-", dir=folder.parent))
            except OSError as error:
                raise InputError(f"Could not {what}", f"SegForge cannot write in {folder.parent} "
                                 f"({error.strerror or error})", "fetch into a folder you can write") from None
            cleanup.callback(shutil.rmtree, staging, True)
            received: list[Path] = []
            server = self._storage_scp(what, classes, _store_handler(staging, wanted, received))
            cleanup.callback(server.shutdown)
            with self._association(what, [(MoveModel, None)]) as assoc:
                for status, _ in assoc.send_c_move(query, config.destination_ae, MoveModel):
                    self._check_move_status(what, status, assoc, received)
            got = {p.stem for p in received}
            if got != wanted:
                raise InputError(f"Could not {what}", f"the PACS sent {len(got)} of the {len(wanted)} instances it "
                                 f"lists to {config.destination_ae!r} on port {config.move_port}",
                                 "try again; if it persists check the PACS's log, and that its modality entry for "
                                 f"{config.destination_ae!r} names this machine and port {config.move_port}")
            try:
                return _move_in(received, folder)
            except OSError as error:
                raise InputError(f"Could not {what}", f"the instances arrived but could not be moved into {folder} "
                                 f"({error.strerror or error})", "check that folder (permissions, free space) and "
                                 "fetch again; nothing was left in it") from None

    def _storage_scp(self, what: str, classes: list[str], on_store: Any) -> Any:
        """Our Storage SCP, listening (in threads) on the configured port; InputError when it cannot."""
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.presentation import DEFAULT_TRANSFER_SYNTAXES

        config = self.config
        ae = AE(ae_title=config.destination_ae)
        for name in ("acse_timeout", "dimse_timeout", "network_timeout"):
            setattr(ae, name, config.timeout_s)
        for uid in classes or [str(c.abstract_syntax) for c in AllStoragePresentationContexts]:
            ae.add_supported_context(uid, list(DEFAULT_TRANSFER_SYNTAXES))  # what C-GET accepts: the same files
        address = f"{config.move_bind}:{config.move_port}"
        try:
            return ae.start_server((config.move_bind, int(config.move_port or 0)), block=False,
                                   evt_handlers=[(evt.EVT_C_STORE, on_store)])
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                why = (f"port {config.move_port}, where SegForge receives the C-MOVE as {config.destination_ae!r}, is "
                       f"in use on {config.move_bind} (another program listens there)")
                todo = (f"stop that program, or set {ENV_MOVE_PORT} to a free port and have the PACS's modality entry "
                        f"for {config.destination_ae!r} name it (or fetch by C-GET: {ENV_FETCH}=get)")
            elif error.errno in (errno.EACCES, errno.EPERM):
                why = f"SegForge may not listen on {address} (ports below 1024 need administrator rights)"
                todo = f"set {ENV_MOVE_PORT} to a port above 1024 the PACS's modality entry names"
            else:
                why = f"SegForge cannot listen on {address} ({error.strerror or error})"
                todo = f"check {ENV_MOVE_BIND} (an address of this machine) and {ENV_MOVE_PORT}"
            raise InputError(f"Could not {what}", why, todo) from None

    def _check_move_status(self, what: str, status: Optional[Dataset], assoc: Any, received: list[Path]) -> None:
        """A C-MOVE response's status said as the PACS means it: a destination it does not know or
        cannot reach is the PACS's configuration, not our AE title's rights."""
        config = self.config
        destination = config.destination_ae
        code = getattr(status, "Status", None) if status is not None else None
        entry = (f"ask the PACS administrator to list {destination!r} with this machine's address and port "
                 f"{config.move_port} among the PACS's modalities, or set {ENV_MOVE_AE} and {ENV_MOVE_PORT} to the "
                 f"title and port it knows us by (or fetch by C-GET: {ENV_FETCH}=get)")
        if code is not None and int(code) == 0xA801:
            raise InputError(f"Could not {what}", f"the PACS at {config.address} does not know the move destination "
                             f"{destination!r}", entry)
        if code is not None and int(code) in (0xA701, 0xA702) and not received:
            raise InputError(f"Could not {what}", f"the PACS at {config.address} could not send the images to "
                             f"{destination!r} (status 0x{int(code):04X}: it calls back the address and port its "
                             f"modality entry names, and SegForge listens on port {config.move_port})",
                             f"check that the PACS's modality entry for {destination!r} names this machine and port "
                             f"{config.move_port}")
        if code is not None and 0xC000 <= int(code) <= 0xCFFF and not received:
            raise InputError(f"Could not {what}", f"the PACS at {config.address} refused the C-MOVE to "
                             f"{destination!r} (status 0x{int(code):04X}: it may not know {destination!r} as a move "
                             f"destination, or found nothing listening at the address and port it knows for it, "
                             f"while SegForge listens on {config.move_bind}:{config.move_port}; its log says which)",
                             entry)
        self._check_status(what, status, (0x0000, *_PENDING, 0xB000), assoc)

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
        self._resolve(what)
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

    def _resolve(self, what: str) -> None:
        """InputError when the host name is not known (pynetdicom says only "[Errno -2] Name or
        service not known"), before any association is tried."""
        try:
            socket.getaddrinfo(self.config.host, self.config.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise InputError(f"Could not {what}", f"the PACS host {self.config.host!r} was not found",
                             f"check {ENV_HOST}") from None

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


def _store_handler(folder: Path, wanted: Optional[set[str]], received: list[Path]) -> Any:
    """The C-STORE handler that writes each instance to ``folder`` as ``<SOP Instance UID>.dcm``;
    with ``wanted``, an instance not of the series asked for is refused (a listening port takes
    what anyone sends it)."""
    lock = threading.Lock()  # the SCP's associations run in threads of their own

    def on_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if not _UID.match(uid) or (wanted is not None and uid not in wanted):
            return 0xC211  # not a UID, or not ours: never a file of ours
        path = folder / f"{uid}.dcm"
        path.write_bytes(event.encoded_dataset())
        with lock:
            if path not in received:
                received.append(path)
        return 0x0000

    return on_store


@contextlib.contextmanager
def _port_turn(port: Optional[int]) -> Iterator[None]:
    """SegForge's fetches on this machine take turns on the C-MOVE port (a batch's workers would
    otherwise fight over it); another program on it is said when the SCP cannot listen. POSIX
    ``flock``; elsewhere no turn is taken."""
    with file_lock(Path(tempfile.gettempdir()) / f"segforge-cmove-{port}.lock", optional=True):
        yield


def _move_in(received: list[Path], folder: Path) -> list[Path]:
    """The received files renamed into ``folder`` (same file system: each rename is whole); a
    failure part way puts the moved ones back, so ``folder`` gets all of them or none."""
    created = not folder.exists()
    folder.mkdir(exist_ok=True)
    moved: list[tuple[Path, Path]] = []
    try:
        for path in sorted(received):
            target = folder / path.name
            os.replace(path, target)
            moved.append((target, path))
    except OSError:
        for target, path in reversed(moved):
            os.replace(target, path)
        if created:
            folder.rmdir()
        raise
    return [target for target, _ in moved]


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
