"""Platform registrations: which LMSs may launch us, read from a YAML file.

    platforms:
      - name: Canvas (test)
        issuer: https://canvas.test.instructure.com
        client_id: "10000000000123"
        auth_login_url: https://sso.test.canvaslms.com/api/lti/authorize_redirect
        auth_token_url: https://sso.test.canvaslms.com/login/oauth2/token
        key_set_url: https://sso.test.canvaslms.com/api/lti/security/jwks
        deployment_ids: ["123:8865aa05b4b79b64a91a86042e43af5ea8ae79eb"]
        ags_origins: ["https://school.test.instructure.com"]

Our AGS token and the scores go only to the platform's own hosts: the origins of
the URLs above, and `ags_origins` where its grade book answers elsewhere (Canvas
in the cloud: the school's own instructure.com host).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grader import yamlio
from grader.errors import GraderError
from grader.schema_errors import invalid, schema_error, yaml_keys

FIX = "see the platform file format in docs/service.md"


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise invalid(f"{value!r} is not an http(s) URL", fix="copy the URL from the LMS's developer key page")
    return value


def origin(url: str) -> Optional[str]:
    """`scheme://host:port` of an http(s) URL, the default port filled in; None for anything else.
    Parsed by httpx, which sends the requests: no parser differential between the check and the send."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    if parts.scheme not in ("https", "http") or not parts.host:
        return None
    return f"{parts.scheme}://{parts.host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class Platform(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    issuer: str
    client_id: Annotated[str, Field(min_length=1)]
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    deployment_ids: Annotated[list[str], Field(min_length=1)]
    token_audience: Optional[str] = None  # the `aud` of our client assertion; default: auth_token_url
    ags_origins: list[str] = []  # where its AGS line items are, beyond the hosts of the URLs above

    @field_validator("issuer", "auth_login_url", "auth_token_url", "key_set_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _url(value)

    @field_validator("ags_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if urlsplit(_url(value)).path.strip("/"):
                raise invalid(f"{value!r} is a URL with a path; an origin is scheme and host only",
                              fix="write it as https://school.instructure.com")
        return values

    @field_validator("client_id", mode="before")
    @classmethod
    def _text(cls, value):
        return str(value) if isinstance(value, int) else value  # YAML reads an unquoted Canvas client id as int

    @field_validator("deployment_ids", mode="before")
    @classmethod
    def _texts(cls, value):
        return [str(v) if isinstance(v, int) else v for v in value] if isinstance(value, list) else value

    @property
    def label(self) -> str:
        return self.name or self.issuer

    @property
    def audience(self) -> str:
        return self.token_audience or self.auth_token_url

    @property
    def origins(self) -> list[str]:
        """The platform's own hosts, where AGS may be reached: its registered URLs and ags_origins."""
        urls = [self.issuer, self.auth_login_url, self.auth_token_url, self.key_set_url, *self.ags_origins]
        return list(dict.fromkeys(o for o in map(origin, urls) if o is not None))

    def serves(self, url: str) -> bool:
        """Whether `url` (an AGS line item) is on one of the platform's own hosts."""
        return origin(url) in self.origins


class Registrations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platforms: Annotated[list[Platform], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Registrations:
        seen: dict[tuple[str, str], int] = {}
        for i, platform in enumerate(self.platforms):
            key = (platform.issuer, platform.client_id)
            if key in seen:
                raise invalid(f"issuer {platform.issuer!r} with client_id {platform.client_id!r} is registered twice",
                              fix="keep one entry per issuer and client id; the first is here",
                              at=("platforms", i, "client_id"), see=("platforms", seen[key], "client_id"))
            seen[key] = i
        return self

    def find(self, issuer: str, client_id: Optional[str] = None) -> Optional[Platform]:
        """The registration for a launch or a passback; `client_id` may be left out when the issuer has one."""
        matches = [p for p in self.platforms if p.issuer == issuer and (client_id is None or p.client_id == client_id)]
        return matches[0] if len(matches) == 1 else None


def _keys_at(loc: tuple) -> list[str]:
    return yaml_keys(Platform if "platforms" in loc else Registrations)


def load_registrations(path: Path) -> Registrations:
    doc = yamlio.load(path)
    if not isinstance(doc.data, dict):
        raise GraderError("a platform file is a mapping with a `platforms:` list", where=doc.where(()), fix=FIX)
    try:
        return Registrations.model_validate(doc.data)
    except ValidationError as exc:
        raise schema_error(exc, doc, keys_at=_keys_at, fix=FIX) from None


def no_registrations() -> Registrations:
    """A server started without --lti: every launch is refused with a message that says how to register."""
    return Registrations.model_construct(platforms=[])
