"""Where the PACS is and how to talk to it: DICOMweb (a URL, a user and a password) or DIMSE
(a host, a port and two AE titles), from the environment or a config file, never a command line.

The environment wins over the file. DICOMweb: ``SEGFORGE_PACS_URL``, ``SEGFORGE_PACS_USER``,
``SEGFORGE_PACS_PASSWORD``. DIMSE (``SEGFORGE_PACS_PROTOCOL=dimse``): ``SEGFORGE_PACS_HOST``,
``SEGFORGE_PACS_PORT``, ``SEGFORGE_PACS_AET`` (the PACS's AE title) and
``SEGFORGE_PACS_CALLING_AET`` (ours, default ``SEGFORGE``); how a series is fetched,
``SEGFORGE_PACS_FETCH`` ``get`` (C-GET, the default) or ``move`` (C-MOVE, for a PACS that offers
no C-GET), and for ``move`` where the PACS sends the images: ``SEGFORGE_PACS_MOVE_AET`` (the
destination AE title, default our calling AE title), ``SEGFORGE_PACS_MOVE_PORT`` (the port our
temporary Storage SCP listens on, the one the PACS's modality entry names) and
``SEGFORGE_PACS_MOVE_BIND`` (the address it listens on, default every interface). Both:
``SEGFORGE_PACS_TIMEOUT`` in seconds. The file is ``SEGFORGE_PACS_CONFIG``, else
``~/.config/segforge/pacs.json``, with the same settings in lower case (``url``, ``username``,
``password``, ``protocol``, ``host``, ``port``, ``called_ae``, ``calling_ae``, ``fetch``,
``move_ae``, ``move_port``, ``move_bind``, ``timeout_s``); one holding a password must be private.
Why here and not in each command: the CLI, the batch (its workers read the same settings) and
the panels all reach the same PACS with the same rule.
"""
from __future__ import annotations

import dataclasses
import json
import os
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import InputError

ENV_URL, ENV_USER, ENV_PASSWORD = "SEGFORGE_PACS_URL", "SEGFORGE_PACS_USER", "SEGFORGE_PACS_PASSWORD"
ENV_TIMEOUT, ENV_CONFIG, ENV_PROTOCOL = "SEGFORGE_PACS_TIMEOUT", "SEGFORGE_PACS_CONFIG", "SEGFORGE_PACS_PROTOCOL"
ENV_HOST, ENV_PORT = "SEGFORGE_PACS_HOST", "SEGFORGE_PACS_PORT"
ENV_CALLED_AE, ENV_CALLING_AE = "SEGFORGE_PACS_AET", "SEGFORGE_PACS_CALLING_AET"
ENV_FETCH, ENV_MOVE_AE = "SEGFORGE_PACS_FETCH", "SEGFORGE_PACS_MOVE_AET"
ENV_MOVE_PORT, ENV_MOVE_BIND = "SEGFORGE_PACS_MOVE_PORT", "SEGFORGE_PACS_MOVE_BIND"
FETCH_METHODS = ("get", "move")
#: Every interface: the PACS calls us back at the address its modality entry names, which is
#: rarely loopback.
DEFAULT_MOVE_BIND = "0.0.0.0"
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
    #: DIMSE: how a series is fetched, "get" (C-GET) or "move" (C-MOVE to ``move_ae``)
    fetch: str = "get"
    #: C-MOVE: the destination AE title the PACS sends to (default ``calling_ae``), the port and
    #: address our Storage SCP listens on while it does
    move_ae: Optional[str] = None
    move_port: Optional[int] = None
    move_bind: str = DEFAULT_MOVE_BIND

    def __repr__(self) -> str:  # a log or traceback never shows the password
        if self.protocol == "dimse":
            move = (f", fetch='move', move_ae={self.destination_ae!r}, move_port={self.move_port}, "
                    f"move_bind={self.move_bind!r}" if self.fetch == "move" else "")
            return (f"PacsConfig(protocol='dimse', host={self.host!r}, port={self.port}, called_ae={self.called_ae!r}, "
                    f"calling_ae={self.calling_ae!r}{move}, timeout_s={self.timeout_s})")
        return f"PacsConfig(url={self.url!r}, username={self.username!r}, timeout_s={self.timeout_s})"

    @property
    def destination_ae(self) -> str:
        """The AE title a C-MOVE asks the PACS to send to."""
        return self.move_ae or self.calling_ae

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
    return PacsConfig(_url(url), setting(ENV_USER, "username"), setting(ENV_PASSWORD, "password"), timeout)


def _url(value: Any) -> str:
    """The DICOMweb root, checked here so that no request library meets a malformed one (a raw
    "Malformed URL" traceback) and no URL carrying a password is kept: every message and the
    settings' repr show the URL, so one with ``user:password@`` is refused without being shown."""
    todo = f"set {ENV_URL} (or url in the config file) to the DICOMweb root, e.g. https://pacs.example.org/dicom-web"
    if not isinstance(value, str):
        raise InputError("The PACS URL is not usable", f"it is {type(value).__name__} {value!r}, not text", todo)
    if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
        raise InputError("The PACS URL is not usable", "it carries a user name or password (user:password@host), "
                         "which SegForge would show in its messages",
                         f"remove them from the URL and set {ENV_USER} and {ENV_PASSWORD} instead")
    try:
        parts = urllib.parse.urlsplit(value.strip())
        parts.port  # noqa: B018 (a port that is no number raises here)
    except ValueError as error:
        raise InputError("The PACS URL is not usable", f"{value!r} cannot be parsed ({error})", todo) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError("The PACS URL is not usable", f"{value!r} is not an http:// or https:// address with a "
                         "host", todo)
    return value.strip().rstrip("/")


def _dimse_config(setting, timeout: float) -> PacsConfig:
    host, port, called = setting(ENV_HOST, "host"), setting(ENV_PORT, "port"), setting(ENV_CALLED_AE, "called_ae")
    missing = [name for name, value in ((ENV_HOST, host), (ENV_PORT, port), (ENV_CALLED_AE, called)) if not value]
    if missing:
        raise InputError("The DIMSE PACS is not fully configured", f"{', '.join(missing)} not set",
                         f"set {ENV_HOST}, {ENV_PORT} and {ENV_CALLED_AE} (or host, port, called_ae in the config "
                         "file)")
    port_number = _port(port, "port", f"give the PACS's DICOM port, a number from 1 to 65535 ({ENV_PORT} or port)")
    calling = str(setting(ENV_CALLING_AE, "calling_ae") or DEFAULT_CALLING_AE)
    fetch = str(setting(ENV_FETCH, "fetch") or "get").strip().lower()
    if fetch not in FETCH_METHODS:
        raise InputError(f"Unknown PACS fetch method {fetch!r}", "SegForge fetches a series by C-GET (get) or "
                         "C-MOVE (move)", f"set {ENV_FETCH} (or fetch in the config file) to get or move")
    move_ae = setting(ENV_MOVE_AE, "move_ae")
    titles = [("called", str(called), ENV_CALLED_AE), ("calling", calling, ENV_CALLING_AE)]
    for name, title, env in titles + ([("move destination", str(move_ae), ENV_MOVE_AE)] if move_ae else []):
        if not 0 < len(title.strip()) <= 16 or "\\" in title:
            raise InputError(f"The {name} AE title {title!r} is not usable", "an AE title has 1 to 16 characters, "
                             "no backslash", f"fix {env}")
    config = PacsConfig(timeout_s=timeout, protocol="dimse", host=str(host), port=port_number,
                        called_ae=str(called).strip(), calling_ae=calling.strip())
    if fetch == "get":
        return config
    move_port = setting(ENV_MOVE_PORT, "move_port")
    if not move_port:
        raise InputError("The C-MOVE fetch is not fully configured", f"{ENV_FETCH}=move but {ENV_MOVE_PORT} is not "
                         "set (the port the PACS sends the images to)", f"set {ENV_MOVE_PORT} (or move_port in the "
                         "config file) to the port the PACS's modality entry for our AE title names")
    move_port_number = _port(move_port, "C-MOVE port", f"give a port number from 1 to 65535 ({ENV_MOVE_PORT} or "
                             "move_port)")
    return dataclasses.replace(config, fetch="move", move_ae=str(move_ae).strip() if move_ae else None,
                               move_port=move_port_number,
                               move_bind=str(setting(ENV_MOVE_BIND, "move_bind") or DEFAULT_MOVE_BIND).strip())


def _port(value: Any, what: str, todo: str) -> int:
    """A TCP port, 1..65535, as a whole number (text of digits from the environment, an integer
    from the file): 104.7 is not cut to 104, ``true`` is not 1, 70000 is not left for the
    network layer to fail on in a thread."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InputError(f"The PACS {what} is not usable", f"it is {value!r}", todo)
    return value


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
