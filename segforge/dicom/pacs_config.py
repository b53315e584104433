"""Where the PACS is and how to talk to it: DICOMweb (a URL, a user and a password) or DIMSE
(a host, a port and two AE titles), from the environment or a config file, never a command line.

The environment wins over the file. DICOMweb: ``SEGFORGE_PACS_URL``, ``SEGFORGE_PACS_USER``,
``SEGFORGE_PACS_PASSWORD``. DIMSE (``SEGFORGE_PACS_PROTOCOL=dimse``): ``SEGFORGE_PACS_HOST``,
``SEGFORGE_PACS_PORT``, ``SEGFORGE_PACS_AET`` (the PACS's AE title) and
``SEGFORGE_PACS_CALLING_AET`` (ours, default ``SEGFORGE``). Both: ``SEGFORGE_PACS_TIMEOUT`` in
seconds. The file is ``SEGFORGE_PACS_CONFIG``, else ``~/.config/segforge/pacs.json``, with the
same settings in lower case (``url``, ``username``, ``password``, ``protocol``, ``host``,
``port``, ``called_ae``, ``calling_ae``, ``timeout_s``); one holding a password must be private.
Why here and not in each command: the CLI, the batch (its workers read the same settings) and
the panels all reach the same PACS with the same rule.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import InputError

ENV_URL, ENV_USER, ENV_PASSWORD = "SEGFORGE_PACS_URL", "SEGFORGE_PACS_USER", "SEGFORGE_PACS_PASSWORD"
ENV_TIMEOUT, ENV_CONFIG, ENV_PROTOCOL = "SEGFORGE_PACS_TIMEOUT", "SEGFORGE_PACS_CONFIG", "SEGFORGE_PACS_PROTOCOL"
ENV_HOST, ENV_PORT = "SEGFORGE_PACS_HOST", "SEGFORGE_PACS_PORT"
ENV_CALLED_AE, ENV_CALLING_AE = "SEGFORGE_PACS_AET", "SEGFORGE_PACS_CALLING_AET"
DEFAULT_CONFIG = Path("~/.config/segforge/pacs.json")
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CALLING_AE = "SEGFORGE"
PROTOCOLS = ("dicomweb", "dimse")
SETUP = (f"set {ENV_URL} (the DICOMweb root, e.g. https://pacs.example.org/dicom-web), {ENV_USER} and "
         f"{ENV_PASSWORD}, or for DIMSE {ENV_PROTOCOL}=dimse with {ENV_HOST}, {ENV_PORT} and {ENV_CALLED_AE}; "
         f"or write them into {DEFAULT_CONFIG}")

#: What a missing configuration is called (a wrong one says what is wrong instead).
NO_PACS = "No PACS is configured"


@dataclass(frozen=True)
class PacsConfig:
    """Where the PACS is and who we are to it (DICOMweb: ``url``; DIMSE: host, port, AE titles)."""

    url: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    protocol: str = "dicomweb"
    host: Optional[str] = None
    port: Optional[int] = None
    called_ae: Optional[str] = None
    calling_ae: str = DEFAULT_CALLING_AE

    def __repr__(self) -> str:  # a log or traceback never shows the password
        if self.protocol == "dimse":
            return (f"PacsConfig(protocol='dimse', host={self.host!r}, port={self.port}, called_ae={self.called_ae!r}, "
                    f"calling_ae={self.calling_ae!r}, timeout_s={self.timeout_s})")
        return f"PacsConfig(url={self.url!r}, username={self.username!r}, timeout_s={self.timeout_s})"

    @property
    def address(self) -> str:
        """The PACS as a person names it in a message."""
        if self.protocol == "dimse":
            return f"{self.called_ae}@{self.host}:{self.port}"
        return str(self.url)


def pacs_config(environ: Optional[Mapping[str, str]] = None) -> PacsConfig:
    """The PACS settings: the environment first, then the config file; InputError when neither says."""
    environ = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    named = environ.get(ENV_CONFIG)
    path = Path(named).expanduser() if named else DEFAULT_CONFIG.expanduser()
    if named or path.is_file():
        file_values = _read_config(path)

    def setting(env: str, key: str) -> Any:
        return environ.get(env) or file_values.get(key)

    protocol = str(setting(ENV_PROTOCOL, "protocol") or "dicomweb").strip().lower()
    if protocol not in PROTOCOLS:
        raise InputError(f"Unknown PACS protocol {protocol!r}", f"SegForge speaks {' and '.join(PROTOCOLS)}",
                         f"set {ENV_PROTOCOL} (or protocol in the config file) to dicomweb or dimse")
    timeout = _positive(setting(ENV_TIMEOUT, "timeout_s") or DEFAULT_TIMEOUT_S, "timeout",
                        f"give a positive number of seconds ({ENV_TIMEOUT} or timeout_s)")
    if protocol == "dimse":
        return _dimse_config(setting, timeout)
    url = setting(ENV_URL, "url")
    if not url:
        raise InputError(NO_PACS, "SegForge found no PACS address", SETUP)
    return PacsConfig(str(url).rstrip("/"), setting(ENV_USER, "username"), setting(ENV_PASSWORD, "password"), timeout)


def _dimse_config(setting, timeout: float) -> PacsConfig:
    host, port, called = setting(ENV_HOST, "host"), setting(ENV_PORT, "port"), setting(ENV_CALLED_AE, "called_ae")
    missing = [name for name, value in ((ENV_HOST, host), (ENV_PORT, port), (ENV_CALLED_AE, called)) if not value]
    if missing:
        raise InputError("The DIMSE PACS is not fully configured", f"{', '.join(missing)} not set",
                         f"set {ENV_HOST}, {ENV_PORT} and {ENV_CALLED_AE} (or host, port, called_ae in the config "
                         "file)")
    port_number = int(_positive(port, "port", f"give the PACS's DICOM port as a number ({ENV_PORT} or port)"))
    calling = str(setting(ENV_CALLING_AE, "calling_ae") or DEFAULT_CALLING_AE)
    for name, title in (("called", str(called)), ("calling", calling)):
        if not 0 < len(title.strip()) <= 16 or "\\" in title:
            raise InputError(f"The {name} AE title {title!r} is not usable", "an AE title has 1 to 16 characters, "
                             "no backslash", f"fix {ENV_CALLED_AE if name == 'called' else ENV_CALLING_AE}")
    return PacsConfig(timeout_s=timeout, protocol="dimse", host=str(host), port=port_number,
                      called_ae=str(called).strip(), calling_ae=calling.strip())


def _positive(value: Any, what: str, todo: str) -> float:
    try:
        number = float(value)
        if not number > 0:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"The PACS {what} is not usable", f"it is {value!r}", todo) from None
    return number


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
