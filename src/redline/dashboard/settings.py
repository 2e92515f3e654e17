"""The dashboard's settings: where it listens, who may use it, what it shows."""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from redline.config import ServiceConfig

__all__ = ["DashboardConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DashboardConfig(ServiceConfig):
    """`redline dashboard` settings (file names in camelCase, as every redline config).

    Bound to anything but a loopback address, the dashboard needs `token` or
    `basicUser`/`basicPassword`; when either is set, every request must present it.
    """

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8790, ge=0, le=65535, description="port to listen on")
    token: str | None = Field(None, description="bearer token (or the password of basic auth)")
    basic_user: str | None = Field(None, alias="basicUser")
    basic_password: str | None = Field(None, alias="basicPassword")
    queues: list[str] = Field(default_factory=list, description="queues to show besides workers'")
    namespaces: list[str] = Field(default_factory=list, description="service namespaces to show")
    sample_every: float = Field(2.0, alias="sampleEvery", gt=0, description="chart sampling (s)")
    history: int = Field(300, gt=1, description="chart points kept")

    @model_validator(mode="after")
    def _auth_off_localhost(self) -> DashboardConfig:
        if bool(self.basic_user) != bool(self.basic_password):
            raise ValueError("basicUser and basicPassword go together: set both or neither")
        if not is_loopback(self.host) and not self.auth_required:
            raise ValueError(
                f"host {self.host!r} is reachable from other machines: set token, or "
                "basicUser and basicPassword (or listen on 127.0.0.1)"
            )
        return self

    @property
    def auth_required(self) -> bool:
        return bool(self.token or self.basic_user)
