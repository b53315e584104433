"""A PACS over DICOMweb: find a study, fetch a series, store SegForge's SEG and SR back.

The address and credentials come from the environment (``SEGFORGE_PACS_URL``,
``SEGFORGE_PACS_USER``, ``SEGFORGE_PACS_PASSWORD``, ``SEGFORGE_PACS_TIMEOUT`` in seconds) or
from a JSON config file (``SEGFORGE_PACS_CONFIG``, else ``~/.config/segforge/pacs.json``, with
``url``, ``username``, ``password``, ``timeout_s``), never from a command line, where any user
of the machine could read them. A file holding a password must be readable by its owner only.

Every failure is an :class:`~segforge.errors.InputError` saying what to do: the PACS down
or unreachable, credentials refused, no answer in time, a study or series that is not
there, an object the PACS would not take. Storing is idempotent: an instance the PACS
already holds (same SOP Instance UID) is not sent again, so a retry after a failure
completes the set without duplicates; each instance is stored whole or not at all (one
STOW-RS request per instance, checked afterwards).
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from ..errors import InputError

ENV_URL, ENV_USER, ENV_PASSWORD = "SEGFORGE_PACS_URL", "SEGFORGE_PACS_USER", "SEGFORGE_PACS_PASSWORD"
ENV_TIMEOUT, ENV_CONFIG = "SEGFORGE_PACS_TIMEOUT", "SEGFORGE_PACS_CONFIG"
DEFAULT_CONFIG = Path("~/.config/segforge/pacs.json")
DEFAULT_TIMEOUT_S = 30.0
_SETUP = (f"set {ENV_URL} (the DICOMweb root, e.g. https://pacs.example.org/dicom-web), {ENV_USER} and "
          f"{ENV_PASSWORD}, or write them into {DEFAULT_CONFIG} (url, username, password)")

T = TypeVar("T")


@dataclass(frozen=True)
class PacsConfig:
    """Where the PACS is and who we are to it."""

    url: str
    username: Optional[str] = None
    password: Optional[str] = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __repr__(self) -> str:  # a log or traceback never shows the password
        return f"PacsConfig(url={self.url!r}, username={self.username!r}, timeout_s={self.timeout_s})"


def pacs_config(environ: Optional[Mapping[str, str]] = None) -> PacsConfig:
    """The PACS settings: the environment first, then the config file; InputError when neither says."""
    environ = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    named = environ.get(ENV_CONFIG)
    path = Path(named).expanduser() if named else DEFAULT_CONFIG.expanduser()
    if named or path.is_file():
        file_values = _read_config(path)
    url = environ.get(ENV_URL) or file_values.get("url")
    if not url:
        raise InputError("No PACS is configured", "SegForge found no PACS address", _SETUP)
    timeout = environ.get(ENV_TIMEOUT) or file_values.get("timeout_s") or DEFAULT_TIMEOUT_S
    try:
        timeout = float(timeout)
        if not timeout > 0:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError("The PACS timeout is not usable", f"it is {timeout!r}",
                         f"give a positive number of seconds ({ENV_TIMEOUT} or timeout_s)") from None
    return PacsConfig(str(url).rstrip("/"), environ.get(ENV_USER) or file_values.get("username"),
                      environ.get(ENV_PASSWORD) or file_values.get("password"), timeout)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError("it holds no JSON object")
    except FileNotFoundError:
        raise InputError(f"No PACS config file {path}", f"{ENV_CONFIG} names it but it does not exist",
                         f"write it (url, username, password) or unset {ENV_CONFIG}") from None
    except (OSError, ValueError) as error:
        raise InputError(f"Cannot read the PACS config file {path}", str(error),
                         'write it as JSON: {"url": "...", "username": "...", "password": "..."}') from None
    if values.get("password") and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"The PACS config file {path} can be read by other users", "it holds a password",
                         f"make it private: chmod 600 {path}")
    return values


class Pacs:
    """A DICOMweb connection to one PACS (QIDO-RS to find, WADO-RS to fetch, STOW-RS to store)."""

    def __init__(self, config: Optional[PacsConfig] = None) -> None:
        self.config = config or pacs_config()
        session = requests.Session()
        if self.config.username is not None:
            session.auth = (self.config.username, self.config.password or "")
        self.client = DICOMwebClient(self.config.url, session=session, timeout=self.config.timeout_s)
        # dicomweb-client retries any failure 5 times with growing waits (half a minute for a PACS
        # that is down): one try, and a clear message, instead; the user's retry is cheap and safe.
        self.client.set_http_retry_params(retry=False)

    def find_studies(self, filters: Optional[Mapping[str, str]] = None) -> list[dict[str, str]]:
        """Studies matching DICOM attribute filters (PatientID, AccessionNumber, StudyDate, ...),
        each as a plain dict of keyword -> text."""
        found = self._call("search the PACS for studies", lambda: self.client.search_for_studies(
            search_filters=dict(filters or {}), get_remaining=True))
        return [_plain(item) for item in found]

    def find_series(self, study_uid: str) -> list[dict[str, str]]:
        """The series of a study; InputError when the PACS does not hold the study."""
        found = self._call(f"list the series of study {study_uid}",
                           lambda: self.client.search_for_series(study_uid, get_remaining=True))
        if not found:
            raise InputError(f"The PACS holds no study {study_uid}", f"{self.config.url} answered with no series",
                             "check the Study Instance UID (segforge pacs find lists the studies)")
        return [_plain(item) for item in found]

    def choose_series(self, study_uid: str, series_uid: Optional[str] = None) -> str:
        """``series_uid`` when the study holds it, else the study's one image series (SEG, SR and
        other derived objects aside); InputError naming the choices otherwise."""
        series = self.find_series(study_uid)
        if series_uid is not None:
            if not any(s.get("SeriesInstanceUID") == series_uid for s in series):
                raise InputError(f"Study {study_uid} holds no series {series_uid}", f"it holds {_describe(series)}",
                                 "give one of those series UIDs")
            return series_uid
        images = [s for s in series if s.get("Modality") not in ("SEG", "SR", "PR", "KO", "REG", "RTSTRUCT")]
        if len(images) != 1:
            raise InputError(f"Study {study_uid} holds {len(images)} image series", f"they are {_describe(images)}",
                             "choose one with --series UID")
        return images[0]["SeriesInstanceUID"]

    def fetch_series(self, study_uid: str, series_uid: str, folder: str | os.PathLike) -> list[Path]:
        """Every instance of the series written into ``folder`` as ``<SOP Instance UID>.dcm``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        datasets = self._call(f"fetch series {series_uid}",
                              lambda: self.client.retrieve_series(study_uid, series_uid))
        if not datasets:
            raise InputError(f"The PACS sent no images of series {series_uid}", "the series is empty",
                             "check the series in the PACS")
        paths = []
        for dataset in datasets:
            path = folder / f"{dataset.SOPInstanceUID}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    def holds_instance(self, dataset: pydicom.Dataset) -> bool:
        found = self._call("look the instance up in the PACS", lambda: self.client.search_for_instances(
            str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID),
            search_filters={"SOPInstanceUID": str(dataset.SOPInstanceUID)}))
        return any(_plain(item).get("SOPInstanceUID") == str(dataset.SOPInstanceUID) for item in found)

    def store(self, paths: Iterable[str | os.PathLike]) -> dict[str, str]:
        """Store each file (SEG, SR...) unless the PACS already holds it; path -> "stored" or
        "already stored". Each file is checked readable before the first is sent."""
        datasets = {}
        for path in paths:
            try:
                datasets[str(path)] = pydicom.dcmread(path)
            except (OSError, pydicom.errors.InvalidDicomError) as error:
                raise InputError(f"Cannot store {path}", f"it is not a readable DICOM file ({error})",
                                 "give the seg.dcm / sr.dcm SegForge wrote") from None
        outcome = {}
        for path, dataset in datasets.items():
            if self.holds_instance(dataset):
                outcome[path] = "already stored"
                continue
            self._call(f"store {Path(path).name}", lambda d=dataset: self.client.store_instances([d]))
            if not self.holds_instance(dataset):
                raise InputError(f"The PACS did not keep {Path(path).name}", "it answered the store request but "
                                 "does not list the instance", "check the PACS's log; run the store again")
            outcome[path] = "stored"
        return outcome

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """The DICOMweb call, its failures said as what happened and what to do."""
        url = self.config.url
        try:
            return call()
        except requests.exceptions.Timeout:
            raise InputError(f"Could not {what}", f"the PACS at {url} did not answer within "
                             f"{self.config.timeout_s:g} s", f"try again later, or allow more time with "
                             f"{ENV_TIMEOUT}") from None
        except requests.exceptions.ConnectionError:
            raise InputError(f"Could not {what}", f"the PACS at {url} cannot be reached (it is down, or the "
                             "address is wrong)", f"check that the PACS is running and {ENV_URL}") from None
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            if status in (401, 403):
                raise InputError(f"Could not {what}", f"the PACS at {url} refused the credentials "
                                 f"(HTTP {status})", f"check {ENV_USER} and {ENV_PASSWORD} (or the config "
                                 "file)") from None
            if status == 404 and "fetch" in what:
                raise InputError(f"Could not {what}", "the PACS does not hold it (HTTP 404)",
                                 "check the study and series UIDs (segforge pacs find)") from None
            if status == 413:
                raise InputError(f"Could not {what}", "the object is larger than the PACS accepts (HTTP 413)",
                                 "ask the PACS administrator to raise its size limit") from None
            detail = _detail(error.response)
            raise InputError(f"Could not {what}", f"the PACS at {url} answered HTTP {status}{detail}",
                             "check the PACS's log; nothing partial was kept by SegForge") from None
        except requests.exceptions.RequestException as error:
            raise InputError(f"Could not {what}", f"the request to {url} failed: {error}",
                             f"check {ENV_URL}") from None


def _detail(response: Any) -> str:
    try:
        text = response.json().get("Details") or response.json().get("Message")
    except (ValueError, AttributeError):
        text = ""
    return f" ({text})" if text else ""


def _plain(item: Mapping[str, Any]) -> dict[str, str]:
    """A DICOM JSON item as keyword -> text (person names as their alphabetic form)."""
    result = {}
    for tag, element in item.items():
        keyword = pydicom.datadict.keyword_for_tag(int(tag, 16)) or tag
        values = element.get("Value", [])
        if values and isinstance(values[0], dict):
            values = [v.get("Alphabetic", "") for v in values]
        result[keyword] = "\\".join(str(v) for v in values)
    return result


def _describe(series: list[dict[str, str]]) -> str:
    if not series:
        return "none"
    return "; ".join(f"{s.get('SeriesInstanceUID')} ({s.get('Modality', '?')}, {s.get('SeriesDescription', '')})"
                     for s in series)
