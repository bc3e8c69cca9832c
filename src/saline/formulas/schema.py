"""The formula metadata file (``formula.yml``): a strict schema. Pure.

A formula is a folder of Salt states and templates plus this file, which says which
services (containers) the formula provides and their lifecycle:

* ``install``: states run while the service's image is built (packages, static files).
  They see no pillar: no secrets, no deployment values, no service started.
* ``configure``: states run when a container starts, or on a host: config files from
  the pillar.
* ``bootstrap``: one-shot, idempotent tasks (databases, db sync, keys, endpoints), run as
  jobs before the service rolls out, never on every start.
* ``command``, ``ports``, ``health``, ``depends``, and for each config file whether a
  change needs a ``restart``, a ``reload`` or nothing (``none``).

Unknown keys are refused, so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SLS = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_sls(names: list[str]) -> list[str]:
    for n in names:
        if not _SLS.match(n):
            raise ValueError(f"{n!r} is not a Salt state name (like keystone.configure)")
    return names


class HttpCheck(_Strict):
    port: int = Field(ge=1, le=65535)
    path: str = "/"
    #: HTTP status codes that count as healthy.
    status: list[int] = [200, 300, 301, 302, 401]


class TcpCheck(_Strict):
    port: int = Field(ge=1, le=65535)


class ExecCheck(_Strict):
    command: list[str] = Field(min_length=1)


class Health(_Strict):
    """Exactly one of http, tcp or exec, and how patient to be."""

    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    exec: ExecCheck | None = None
    interval: float = Field(default=2.0, gt=0)
    timeout: float = Field(default=5.0, gt=0)
    #: How long a starting service may take to become healthy.
    start_period: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Health:
        kinds = [k for k in ("http", "tcp", "exec") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of http, tcp or exec")
        return self


class Port(_Strict):
    name: str
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class BootstrapTask(_Strict):
    name: Annotated[str, Field(pattern=_NAME.pattern)]
    states: list[str] = Field(min_length=1)
    #: False (default): the task runs before its service starts, once the services it
    #: depends on are healthy (db sync, keys). True: it talks to its own running service,
    #: so it runs once that service is healthy (MariaDB databases, RabbitMQ users), and
    #: the services depending on this one wait for it.
    needs_running: bool = False
    #: Services that must be ready before the task, when it needs fewer than its service's
    #: ``depends`` (glance's db sync needs MariaDB, not keystone). Default: those.
    depends: list[str] | None = None
    #: Seconds the task may run; past that `saline up` removes it and fails naming it
    #: (every wait is bounded: a task that hangs must not hang the deployment).
    timeout: Annotated[float, Field(gt=0)] = 600.0

    _v = field_validator("states")(_check_sls)


class Service(_Strict):
    #: The pillar key whose ``enabled: true`` puts this service on a node
    #: (e.g. ``keystone:server``).
    pillar: str
    install: list[str] = Field(min_length=1)
    configure: list[str] = []
    bootstrap: list[BootstrapTask] = []
    command: list[str] = Field(min_length=1)
    #: The user the command runs as (the entrypoint drops to it); None: root.
    user: str | None = None
    ports: list[Port] = []
    health: Health
    #: Services (by name, from any formula) that must be healthy before this one starts.
    depends: list[str] = []
    #: Config file path -> what a change to it needs.
    config_files: dict[str, Literal["restart", "reload", "none"]] = {}
    #: ``saline openrc``: OS_* variables, as format strings over the service's pillar
    #: section (``"http://{bind[public_address]}:{bind[port]}/v3"``).
    openrc: dict[Annotated[str, Field(pattern=r"^OS_[A-Z_]+$")], str] = {}
    #: Data that outlives the container: volume name -> absolute path in the container.
    #: The service's bootstrap tasks mount the same volumes.
    volumes: dict[Annotated[str, Field(pattern=_NAME.pattern)], str] = {}

    _v_install = field_validator("install")(_check_sls)
    _v_configure = field_validator("configure")(_check_sls)

    @field_validator("config_files")
    @classmethod
    def _absolute(cls, v: dict[str, str]) -> dict[str, str]:
        for path in v:
            if not path.startswith("/"):
                raise ValueError(f"{path!r}: config file paths are absolute")
        return v

    @field_validator("volumes")
    @classmethod
    def _absolute_mounts(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not path.startswith("/"):
                raise ValueError(f"volume {name}: {path!r} is not an absolute path")
        return v


class FormulaMeta(_Strict):
    name: Annotated[str, Field(pattern=_NAME.pattern)]
    description: str = ""
    services: dict[str, Service] = Field(min_length=1)

    @field_validator("services")
    @classmethod
    def _service_names(cls, v: dict[str, Service]) -> dict[str, Service]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"service name {name!r}: lowercase letters, digits and '-'")
        return v
