"""Deep Linking 2.0: the instructor picks an assignment, and the platform gets back a signed
LtiDeepLinkingResponse with one ltiResourceLink whose custom parameter `assignment` names it, and a
line item (scoreMaximum from the rubric, resourceId and tag the assignment id)."""

from __future__ import annotations

import time
import uuid

from grader.service.lti.keys import ToolKey
from grader.service.lti.launch import CLAIM, CONTENT_TYPE, Launch
from grader.service.lti.lineitems import Resource

DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
RESPONSE_SECONDS = 600


def content_item(resource: Resource, launch_url: str, lineitem: bool = True) -> dict:
    """The link to the assignment; with its grade-book column unless the platform said accept_lineitem: false."""
    item = {"type": CONTENT_TYPE, "title": resource.label, "url": launch_url, "custom": {"assignment": resource.id}}
    if lineitem:
        item["lineItem"] = {"scoreMaximum": resource.score_maximum, "label": resource.label,
                            "resourceId": resource.id, "tag": resource.id}
    return item


def response_token(key: ToolKey, launch: Launch, resource: Resource, launch_url: str) -> str:
    """The JWT for the platform's deep_link_return_url: from us (iss = our client id) to the platform (aud)."""
    now, settings = int(time.time()), launch.deep_link or {}
    claims = {"iss": launch.client_id, "aud": launch.issuer, "iat": now, "exp": now + RESPONSE_SECONDS,
              "nonce": uuid.uuid4().hex,
              CLAIM + "message_type": "LtiDeepLinkingResponse", CLAIM + "version": "1.3.0",
              CLAIM + "deployment_id": launch.deployment_id,
              DL_CLAIM + "content_items": [content_item(resource, launch_url,
                                                        settings.get("accept_lineitem") is not False)],
              DL_CLAIM + "msg": f"Added {resource.label} ({resource.id})"}
    if settings.get("data") is not None:
        claims[DL_CLAIM + "data"] = settings["data"]  # the platform's, back as it came
    return key.sign(claims)
