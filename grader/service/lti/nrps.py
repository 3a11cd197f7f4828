"""Names and Role Provisioning Services 2.0: the course roster, read from the launch's
`context_memberships_url` page by page, kept per course in the store for the instructor's page."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from grader.service.lti.config import Platform
from grader.service.lti.tokens import NRPS_SCOPE, ServiceCalls
from grader.service.store import Store

MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


@dataclass(frozen=True)
class Member:
    user_id: str  # the `sub` of the member's launches
    name: str = ""  # empty where the platform's privacy settings withhold it
    email: str = ""
    roles: tuple[str, ...] = ()
    status: str = "Active"


def _member(entry: dict) -> Optional[Member]:
    if not isinstance(entry, dict) or not isinstance(entry.get("user_id"), str):
        return None
    name = entry.get("name") or " ".join(str(entry[k]) for k in ("given_name", "family_name") if entry.get(k))
    roles = entry["roles"] if isinstance(entry.get("roles"), list) else []
    return Member(user_id=entry["user_id"], name=str(name or ""), email=str(entry.get("email") or ""),
                  roles=tuple(str(r) for r in roles), status=str(entry.get("status") or "Active"))


def roster_key(platform: Platform, memberships_url: str) -> str:
    return f"{platform.issuer} {platform.client_id} {memberships_url}"


def read_roster(calls: ServiceCalls, store: Store, platform: Platform, memberships_url: str) -> list[Member]:
    """Every member of the course, following `Link: rel="next"`; stored (replacing the last read) and returned."""
    members: dict[str, Member] = {}
    for response in calls.pages(platform, memberships_url, NRPS_SCOPE, MEMBERSHIP_TYPE, "course members"):
        body = response.json()
        for entry in body.get("members", []) if isinstance(body, dict) else []:
            member = _member(entry)
            if member is not None:
                members[member.user_id] = member
    roster = sorted(members.values(), key=lambda m: (m.name.lower() or "~", m.user_id))
    store.put_record("roster", roster_key(platform, memberships_url), {"members": [asdict(m) for m in roster]})
    return roster
