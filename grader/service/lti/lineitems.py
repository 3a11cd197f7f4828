"""AGS line items: the grade-book column of an assignment, found by `resourceId` (or tag) first and created
only when the platform has none, with `scoreMaximum` from the rubric; then kept in the store, so two launches
(or two nodes, or a restart) reuse one column instead of adding another (PrairieLearn #15643)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

from grader.service.lti.config import Platform
from grader.service.lti.tokens import LINEITEM_SCOPE, ServiceCalls, excerpt
from grader.service.outbox import Permanent
from grader.service.store import Store

LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"


@dataclass(frozen=True)
class Resource:
    """What a line item grades: an assignment (its id is the resourceId and the tag), its title, its points."""
    id: str
    label: str
    score_maximum: float


class LineItems:
    def __init__(self, calls: ServiceCalls, store: Store):
        self.calls, self.store = calls, store
        self._lock = threading.Lock()  # two launches of one node at once create one column

    def find_or_create(self, platform: Platform, lineitems: str, resource: Resource,
                       resource_link_id: Optional[str] = None) -> str:
        """The URL of the line item for `resource` in the platform's container `lineitems`."""
        key = f"{platform.issuer} {platform.client_id} {lineitems} {resource.id}"
        with self._lock:
            cached = self.store.get_record("lineitem", key)
            if cached:
                return cached["url"]
            url = self._find(platform, lineitems, resource) or self._create(platform, lineitems, resource,
                                                                            resource_link_id)
            self.store.put_record("lineitem", key, {"url": url, "resource": resource.id})
            return url

    def _find(self, platform: Platform, lineitems: str, resource: Resource) -> Optional[str]:
        # The query filters; the platform may ignore it, so each item is matched here as well.
        for response in self.calls.pages(platform, lineitems, LINEITEM_SCOPE, CONTAINER_TYPE, "line items",
                                         params={"resource_id": resource.id}):
            items = response.json()
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("id"), str) and \
                        resource.id in (item.get("resourceId"), item.get("tag")):
                    return item["id"]
        return None

    def _create(self, platform: Platform, lineitems: str, resource: Resource,
                resource_link_id: Optional[str]) -> str:
        body = {"scoreMaximum": resource.score_maximum, "label": resource.label, "resourceId": resource.id,
                "tag": resource.id}
        if resource_link_id:
            body["resourceLinkId"] = resource_link_id
        response = self.calls.call(platform, "POST", lineitems, LINEITEM_SCOPE, "line items", json=body,
                                   headers={"Content-Type": LINEITEM_TYPE, "Accept": LINEITEM_TYPE})
        if 400 <= response.status_code < 500:
            raise Permanent(f"{platform.label} refused to create the line item of {resource.id} at {lineitems} "
                            f"({excerpt(response)}); enable the line item scope for this tool in the LMS")
        response.raise_for_status()
        created = response.json()
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise Permanent(f"{platform.label} created a line item at {lineitems} but sent no id URL for it "
                            f"({excerpt(response)})")
        return created["id"]
