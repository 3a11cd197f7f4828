"""LTI Advantage against the platform stand-in on loopback: Deep Linking 2.0 (the instructor picks the
assignment; a signed LtiDeepLinkingResponse goes back), Names and Role Provisioning 2.0 (the roster, paged,
on the instructor's grade book only), AGS line items (found by resourceId, created once), and the 1EdTech
certification suite's invalid launches (each refused, saying where) and valid ones (each accepted)."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from grader.api import load_rubric
from grader.service.lti.launch import teaches
from tests.fixtures.service.harness import ADA, notebook_bytes
from tests.fixtures.service.lti_tool import fresh_knobs, platform, server  # noqa: F401 (pytest fixtures)
from tests.fixtures.service.platform import (
    AGS,
    CLAIM,
    DL_SETTINGS,
    INSTRUCTOR,
    LEARNER,
    LINEITEM_SCOPE,
    NRPS,
    SCORE_SCOPE,
    Platform,
    hidden,
)

RUBRICS = "tests/fixtures/service/rubrics"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"




def _text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def _refused(response: httpx.Response, status: int, says: str, where: str) -> None:
    assert response.status_code == status, response.text
    text = _text(response)
    assert says in text and f"<code>{where}</code>" in text and "What to do" in text, text


def _max_score(assignment: str) -> float:
    return load_rubric(f"{RUBRICS}/{assignment}.yaml").max_score


# Deep Linking 2.0


def _deep_linking(platform: Platform, roles: list[str], **settings) -> None:
    platform.assignment = None  # the link does not exist yet
    platform.next_claims = {CLAIM + "message_type": "LtiDeepLinkingRequest", CLAIM + "roles": roles,
                            DL_SETTINGS: {"deep_link_return_url": platform.deep_link_return_url,
                                          "accept_types": ["ltiResourceLink"], "accept_lineitem": True,
                                          "accept_presentation_document_targets": ["iframe", "window"],
                                          "data": "opaque-42", **settings}}
    platform.drop_next = {CLAIM + "resource_link"}


def _returned(platform: Platform, server, picker: httpx.Response, assignment: str) -> dict:
    """Pick `assignment`, post the returned form as the browser would, and verify the JWT with our JWKS."""
    chosen = server.http.post("/lti/deep-link", data={"launch": hidden(picker.text, "launch"),
                                                       "assignment": assignment})
    assert chosen.status_code == 200, chosen.text
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)" id="return">', chosen.text)[1])
    assert action == platform.deep_link_return_url
    assert 'document.getElementById("return").submit()' in chosen.text  # posts itself back to the LMS
    assert httpx.post(action, data={"JWT": hidden(chosen.text, "JWT")}, trust_env=False).status_code == 200
    token = platform.deep_link_returns[-1]["JWT"]
    jwks = jwt.PyJWKSet.from_dict(server.http.get("/.well-known/jwks.json").json())
    key = next(k.key for k in jwks.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    return jwt.decode(token, key, algorithms=["RS256"], audience=platform.issuer,
                      options={"require": ["iss", "aud", "iat", "exp", "nonce"]})


def test_a_deep_linking_round_trip_returns_the_chosen_assignment_signed(platform, server):
    _deep_linking(platform, [INSTRUCTOR])
    picker = platform.launch(server.http, "ina")
    assert picker.status_code == 200, picker.text
    assert 'value="svc-static"' in picker.text and 'value="svc-evaluate"' in picker.text
    assert f"{_max_score('svc-evaluate'):g} points" in picker.text
    claims = _returned(platform, server, picker, "svc-evaluate")
    assert claims["iss"] == platform.client_id
    assert claims[CLAIM + "message_type"] == "LtiDeepLinkingResponse" and claims[CLAIM + "version"] == "1.3.0"
    assert claims[CLAIM + "deployment_id"] == platform.deployment_id and claims[DL + "data"] == "opaque-42"
    [item] = claims[DL + "content_items"]
    assert item["type"] == "ltiResourceLink" and item["url"] == f"{server.url}/lti/launch"
    assert item["custom"] == {"assignment": "svc-evaluate"}
    assert item["lineItem"] == {"scoreMaximum": _max_score("svc-evaluate"), "label": item["title"],
                                "resourceId": "svc-evaluate", "tag": "svc-evaluate"}
    # the link the platform made launches into the chosen assignment
    platform.assignment = item["custom"]["assignment"]
    page = platform.launch(server.http, "ann")
    assert page.status_code == 200 and 'name="assignment" value="svc-evaluate"' in page.text


def test_a_platform_that_takes_no_line_item_gets_the_link_alone(platform, server):
    _deep_linking(platform, [INSTRUCTOR], accept_lineitem=False, data=None)
    claims = _returned(platform, server, platform.launch(server.http, "ina"), "svc-static")
    [item] = claims[DL + "content_items"]
    assert item["custom"] == {"assignment": "svc-static"} and "lineItem" not in item
    assert DL + "data" not in claims


def test_a_deep_linking_request_for_other_content_types_is_refused(platform, server):
    _deep_linking(platform, [INSTRUCTOR], accept_types=["file", "html"])
    _refused(platform.launch(server.http, "ina"), 400, "accepts file, html, and this tool returns an ltiResourceLink",
             "accept_types")


def test_a_deep_linking_choice_of_an_unknown_assignment_says_which_exist(platform, server):
    _deep_linking(platform, ["Instructor"])  # the short role form is a teaching role too
    picker = platform.launch(server.http, "ina")
    chosen = server.http.post("/lti/deep-link", data={"launch": hidden(picker.text, "launch"),
                                                       "assignment": "mnist-s3"})
    _refused(chosen, 404, "no assignment 'mnist-s3'", "assignment")
    assert "svc-evaluate, svc-static" in _text(chosen)


def test_a_learners_deep_linking_launch_is_refused(platform, server):
    _deep_linking(platform, [LEARNER])
    _refused(platform.launch(server.http, "ann"), 403, "for the course's instructors", "roles")


def test_a_resource_link_launch_cannot_return_a_deep_link(platform, server):
    platform.next_claims = {CLAIM + "roles": [INSTRUCTOR]}
    page = platform.launch(server.http, "ina")
    assert page.status_code == 200 and "Grade book" in page.text
    _refused(server.http.post("/lti/deep-link", data={"launch": hidden(page.text, "launch"),
                                                       "assignment": "svc-static"}),
             400, "not a deep-linking request", "message_type")


@pytest.mark.parametrize("roles, teaching", [
    ([INSTRUCTOR], True), (["Instructor"], True), (["TeachingAssistant"], True),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"], True),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper"], True),
    ([LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"], False),  # not this course
    (["http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator"], False),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership#Unheard-of", "urn:lti:role:made-up"], False), ([], False),
])
def test_teaching_roles_are_the_courses_own(roles, teaching):
    assert teaches(roles) is teaching


# Names and Role Provisioning 2.0


ROSTER = [
    {"user_id": "user-ann", "name": "Ann Lee", "email": "ann@example.edu", "roles": [LEARNER], "status": "Active"},
    {"user_id": "user-bob", "roles": [LEARNER], "status": "Active"},  # the platform withholds his name
    {"user_id": "user-ina", "given_name": "Ina", "family_name": "Orr", "roles": [INSTRUCTOR], "status": "Active"},
]


def test_the_roster_is_read_page_by_page_and_shown_to_instructors_only(platform, server):
    platform.members, platform.roster_requests = ROSTER, []
    nrps = {NRPS: {"context_memberships_url": platform.memberships_url, "service_versions": ["2.0"]}}
    platform.next_claims = {**nrps, CLAIM + "roles": [INSTRUCTOR]}
    book = platform.launch(server.http, "ina")
    assert book.status_code == 200, book.text
    assert platform.roster_requests == ["", "page=1"]  # two pages, the second from Link: rel="next"
    text = _text(book)
    assert "Signed in from your course as <strong>Ina</strong>, an instructor" in text
    for shown in ("Ann Lee", "ann@example.edu", "user-bob", "Ina Orr", "Learner", "Instructor"):
        assert shown in text, shown
    # a student's launch of the same link: their own name only
    platform.next_claims = dict(nrps)
    student = platform.launch(server.http, "ann")
    assert student.status_code == 200 and "Hand in your notebook" in student.text
    assert not {"Ann Lee", "Ina Orr", "user-bob", "ann@example.edu"} & set(re.findall(r"Ann Lee|Ina Orr|user-bob|"
                                                                                        r"ann@example\.edu",
                                                                                        student.text))
    assert platform.roster_requests == ["", "page=1"]  # a student's launch reads no roster
    # ... nor can their launch open the grade book
    _refused(server.http.post("/lti/instructor", data={"launch": hidden(student.text, "launch")}), 403,
             "for the course's instructors", "roles")
    _refused(server.http.post("/lti/instructor", data={"launch": "forged"}), 401, "launch is not valid", "launch")


def test_a_roster_page_on_a_foreign_host_is_not_asked_for(platform, server):
    """A `next` link is followed only to the platform's own hosts: our token would go with it."""
    platform.members, platform.roster_requests = ROSTER, []
    platform.roster_next = "http://127.0.0.1:9/steal-the-token"
    platform.next_claims = {NRPS: {"context_memberships_url": platform.memberships_url},
                            CLAIM + "roles": [INSTRUCTOR]}
    try:
        book = platform.launch(server.http, "ina")
    finally:
        platform.roster_next = None
    assert book.status_code == 200 and platform.roster_requests == [""]
    text = _text(book)
    assert "The roster could not be read from Stand-in LMS" in text and "is not on Stand-in LMS's own hosts" in text


def test_without_a_roster_service_the_grade_book_says_how_to_enable_it(platform, server):
    platform.next_claims = {CLAIM + "roles": [INSTRUCTOR]}
    book = platform.launch(server.http, "ina")
    assert book.status_code == 200
    assert "contextmembership.readonly for this tool in the LMS" in _text(book)


# AGS line items


def test_a_line_item_is_created_once_over_two_launches_and_gets_the_score(platform, server):
    platform.lineitems.clear()
    platform.lineitem_requests.clear()
    ags = {AGS: {"scope": [SCORE_SCOPE, LINEITEM_SCOPE], "lineitems": platform.lineitems_url}}
    nrps = {NRPS: {"context_memberships_url": platform.memberships_url, "service_versions": ["2.0"]}}
    platform.members = ROSTER
    for _ in range(2):
        platform.next_claims = {**ags, **nrps, CLAIM + "roles": [INSTRUCTOR]}
        book = platform.launch(server.http, "ina")
        assert book.status_code == 200, book.text
    [item] = platform.lineitems
    assert platform.lineitem_requests == [("GET", "resource_id=svc-static"), ("POST", "")]  # then the cache
    assert {k: item[k] for k in ("scoreMaximum", "resourceId", "tag", "resourceLinkId")} == {
        "scoreMaximum": _max_score("svc-static"), "resourceId": "svc-static", "tag": "svc-static",
        "resourceLinkId": "resource-link-7"}
    assert f"<code>{item['id']}</code>" in book.text
    # a student's grade goes to that line item
    before = len(platform.scores)
    platform.next_claims = dict(ags)
    page = platform.launch(server.http, "ann")
    handed_in = server.http.post("/upload", data={"launch": hidden(page.text, "launch"), "assignment": "other"},
                                 files={"notebook": ("notebook.ipynb", notebook_bytes(ADA))})
    assert handed_in.status_code == 303, handed_in.text
    job = handed_in.headers["location"].rsplit("/", 1)[1]
    assert server.wait(job)["score"] == 15
    score = platform.wait_scores(before + 1)[-1]
    assert score["path"] == f"/api/lti/courses/1/line_items/{item['id'].split('/')[-2]}/lineitem/scores"
    assert score["body"]["userId"] == "user-ann" and score["body"]["scoreMaximum"] == 15
    assert len(platform.lineitems) == 1 and len(platform.lineitem_requests) == 2
    # and the instructor's grade book shows it beside her name
    deadline = time.monotonic() + 10
    while "15 / 15" not in (refreshed := server.http.post("/lti/instructor",
                                                          data={"launch": hidden(book.text, "launch")})).text:
        assert time.monotonic() < deadline, refreshed.text
        time.sleep(0.2)
    row = re.search(r'<tr data-user="user-ann">(.*?)</tr>', refreshed.text, re.S)[1]
    assert "Ann Lee" in row and "15 / 15" in row and f"/submissions/{job}" in row


def test_a_students_passback_makes_the_line_item_when_no_instructor_launched_first(platform, server):
    platform.lineitems.clear()
    platform.lineitem_requests.clear()
    container = f"{platform.lineitems_url}?course=2"  # another course: nothing found or cached for it yet
    before = len(platform.scores)
    platform.next_claims = {AGS: {"scope": [SCORE_SCOPE, LINEITEM_SCOPE], "lineitems": container}}
    page = platform.launch(server.http, "cy")
    assert platform.lineitem_requests == []  # a student's launch waits for nothing
    handed_in = server.http.post("/upload", data={"launch": hidden(page.text, "launch"), "assignment": "other"},
                                 files={"notebook": ("notebook.ipynb", notebook_bytes(ADA))})
    assert handed_in.status_code == 303, handed_in.text
    score = platform.wait_scores(before + 1)[-1]
    [item] = platform.lineitems
    assert platform.lineitem_requests == [("GET", "course=2&resource_id=svc-static"), ("POST", "course=2")]
    assert item["scoreMaximum"] == 15 and item["resourceId"] == "svc-static"
    assert score["path"] == urlsplit(item["id"]).path + "/scores" and score["body"]["userId"] == "user-cy"


def test_an_existing_line_item_is_found_by_its_resource_id(platform, server):
    platform.lineitem_requests.clear()
    existing = {"id": f"{platform.lineitems_url}/55/lineitem", "resourceId": "svc-evaluate", "tag": "svc-evaluate",
                "scoreMaximum": _max_score("svc-evaluate"), "label": "made by the LMS"}
    platform.lineitems[:] = [existing]
    platform.assignment = "svc-evaluate"
    platform.next_claims = {AGS: {"scope": [SCORE_SCOPE, LINEITEM_SCOPE], "lineitems": platform.lineitems_url},
                            CLAIM + "roles": [INSTRUCTOR]}
    book = platform.launch(server.http, "ina")
    assert book.status_code == 200 and f"<code>{existing['id']}</code>" in book.text
    assert platform.lineitem_requests == [("GET", "resource_id=svc-evaluate")] and platform.lineitems == [existing]


# the certification suite's launches


NOW = int(time.time())


@pytest.mark.parametrize("header, claims, drop, says, where", [
    pytest.param({"kid": None}, {}, (), "names no key (no kid)", "kid", id="no kid"),
    pytest.param({"kid": "not-the-platforms"}, {}, (), "which the platform's JWKS does not hold", "kid",
                 id="wrong kid"),
    pytest.param({}, {CLAIM + "version": "1.2.0"}, (), "LTI version '1.2.0'", "version", id="wrong LTI version"),
    pytest.param({}, {}, (CLAIM + "version", CLAIM + "message_type"), "is not an LTI launch", "version",
                 id="not an LTI JWT"),
    pytest.param({}, {}, ("iat",), "has no 'iat' claim", "iat", id="missing iat"),
    pytest.param({}, {}, ("exp",), "has no 'exp' claim", "exp", id="missing exp"),
    pytest.param({}, {"iat": NOW + 3600, "exp": NOW + 4000}, (), "issued in the future", "iat", id="iat in future"),
    pytest.param({}, {"iat": NOW - 900, "exp": NOW - 600}, (), "has expired", "exp", id="expired"),
    pytest.param({}, {}, (CLAIM + "message_type",), "message type None", "message_type", id="no message_type"),
    pytest.param({}, {}, (CLAIM + "roles",), "has no roles claim", "roles", id="no roles claim"),
    pytest.param({}, {}, (CLAIM + "deployment_id",), "has no deployment_id", "deployment_id",
                 id="no deployment_id"),
    pytest.param({}, {CLAIM + "resource_link": {"title": "no id"}}, (), "has no resource link id", "resource_link",
                 id="no resource link id"),
    pytest.param({}, {}, ("sub",), "has no 'sub' claim", "sub", id="no sub"),
])
def test_a_certification_invalid_launch_is_refused(platform, server, header, claims, drop, says, where):
    platform.next_header, platform.next_claims, platform.drop_next = header, claims, set(drop)
    response = platform.launch(server.http, "ann")
    _refused(response, 401, says, where)
    assert "Hand in your notebook" not in response.text


def test_an_id_token_that_is_no_jwt_is_refused(platform, server):
    _, state, cookie = platform.authenticate(server.http, "ann")
    response = server.http.post("/lti/launch", data={"id_token": "not-a-jwt", "state": state},
                                headers={"Cookie": cookie})
    _refused(response, 401, "the id_token is not a JWT", "id_token")


@pytest.mark.parametrize("claims, drop, shown", [
    pytest.param({CLAIM + "roles": [LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor",
                                    "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"]}, (), "Ann",
                 id="multiple roles"),
    pytest.param({CLAIM + "roles": ["Learner"]}, (), "Ann", id="short role"),
    pytest.param({CLAIM + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Unheard-of"]}, (), "Ann",
                 id="unknown role"),
    pytest.param({CLAIM + "roles": []}, (), "Ann", id="no roles"),
    pytest.param({}, ("name",), "user-ann", id="no personal data"),
    pytest.param({"given_name": "Ann", "family_name": "Lee"}, ("name",), "Ann Lee", id="names only"),
    pytest.param({"email": "ann@example.edu"}, ("name",), "ann@example.edu", id="email only"),
])
def test_a_certification_valid_launch_is_accepted(platform, server, claims, drop, shown):
    platform.next_claims, platform.drop_next = claims, set(drop)
    page = platform.launch(server.http, "ann")
    assert page.status_code == 200, page.text
    assert f"Signed in from your course as <strong>{shown}</strong>" in page.text and hidden(page.text, "launch")
