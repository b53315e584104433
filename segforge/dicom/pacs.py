"""A PACS over DICOMweb: find a study, fetch a series, store SegForge's SEG and SR back.

The address and credentials come from the environment or a config file
(:mod:`.pacs_config`), never from a command line, where any user of the machine could read
them. :func:`open_pacs` gives this class or the DIMSE one (:mod:`.dimse`), as the settings say.

Every failure is an :class:`~segforge.errors.InputError` saying what to do: the PACS down
or unreachable, credentials refused, no answer in time, a study or series that is not
there, an object the PACS would not take. Storing is idempotent: an instance the PACS
already holds (same SOP Instance UID) is not sent again, so a retry after a failure
completes the set without duplicates; each instance is stored whole or not at all (one
STOW-RS request per instance, checked afterwards).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from ..errors import InputError
from .pacs_base import PacsClient
from .pacs_config import (DEFAULT_CONFIG, ENV_CONFIG, ENV_PASSWORD, ENV_TIMEOUT, ENV_URL,  # noqa: F401 (kept names)
                          ENV_USER, PacsConfig, pacs_config)

T = TypeVar("T")


def open_pacs(config: Optional[PacsConfig] = None) -> PacsClient:
    """The PACS the settings name, over the protocol they name (DICOMweb or DIMSE)."""
    config = config or pacs_config()
    if config.protocol == "dimse":
        from .dimse import DimsePacs

        return DimsePacs(config)
    return Pacs(config)


class Pacs(PacsClient):
    """A DICOMweb connection to one PACS (QIDO-RS to find, WADO-RS to fetch, STOW-RS to store)."""

    def __init__(self, config: Optional[PacsConfig] = None) -> None:
        self.config = config or pacs_config()
        if self.config.protocol != "dicomweb" or not self.config.url:
            raise InputError("The PACS is not configured for DICOMweb", f"the settings name {self.config!r}",
                             "use open_pacs(), which picks the protocol the settings name")
        session = requests.Session()
        if self.config.username is not None:
            session.auth = (self.config.username, self.config.password or "")
        self.client = DICOMwebClient(self.config.url, session=session, timeout=self.config.timeout_s)
        # dicomweb-client retries any failure 5 times with growing waits (half a minute for a PACS
        # that is down): one try, and a clear message, instead; the user's retry is cheap and safe.
        self.client.set_http_retry_params(retry=False)

    def echo(self) -> None:
        """One study search (at most one answer): the PACS is up and takes our credentials."""
        self._call("check the PACS", lambda: self.client.search_for_studies(limit=1))

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

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        found = self._call(f"list the instances of series {series_uid}", lambda: self.client.search_for_instances(
            study_uid, series_uid, get_remaining=True))
        return [_plain(item).get("SOPInstanceUID", "") for item in found]

    def _send(self, path: str, dataset: pydicom.Dataset) -> None:
        self._call(f"store {Path(path).name}", lambda: self.client.store_instances([dataset]))

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

