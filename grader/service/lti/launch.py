"""The LTI 1.3 launch: OIDC third-party login initiation, the authentication request, the id_token POST.

    LMS --(iss, login_hint, ...)--> /lti/login --302 + state cookie--> platform auth_login_url (state, nonce)
    platform --(form POST id_token, state; the browser sends the cookie)--> /lti/launch --> the upload page
    (a learner), the grade book (a teaching role), or the assignment picker (a deep-linking request)

The state and its nonce are kept in the store; a nonce is used once. The launch is
bound to the browser that started the login: login sets a cookie named after the
state (SameSite=None; Secure; HttpOnly; Partitioned, as a tool inside an LMS iframe
needs) whose hash the state keeps, and the launch is refused without it. An
attacker's own id_token and state, POSTed from a victim's browser, lack it.
The upload page carries the launch on as a short-lived JWT signed with our own key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Optional
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

from grader.service.errors import ServiceError
from grader.service.lti.config import Platform, Registrations
from grader.service.lti.keys import ToolKey
from grader.service.lti.tokens import LINEITEM_SCOPE, SCORE_SCOPE
from grader.service.store import Store

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
RESOURCE_LINK, DEEP_LINKING = "LtiResourceLinkRequest", "LtiDeepLinkingRequest"
DL_KEPT = ("deep_link_return_url", "data", "accept_types", "accept_lineitem")
CONTENT_TYPE = "ltiResourceLink"  # what deep linking returns: one link to an assignment
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
TEACHING = {"Instructor", "Administrator", "ContentDeveloper", "TeachingAssistant"}
STATE_SECONDS = 600  # from login initiation to the id_token POST
STATE_COOKIE = "lti-state-"  # + the state: one cookie per login, so two tabs launching at once do not collide
SESSION_SECONDS = 4 * 3600  # how long the upload page of one launch accepts a notebook
LEEWAY_SECONDS = 60  # clock difference tolerated between the LMS and us
REGISTER = "add it to the platform file given with --lti (docs/service.md shows the fields)"


def teaches(roles) -> bool:
    """Whether a course role among `roles` is a teaching one: the LIS context roles (membership#Instructor,
    membership/Instructor#TeachingAssistant, ...) or their short forms ("Instructor"). Institution and
    system roles say nothing about this course; unknown roles are a learner's."""
    for role in roles:
        if role.startswith(MEMBERSHIP):
            role = role.rsplit("#", 1)[-1]
        if ":" not in role and role in TEACHING:
            return True
    return False


@dataclass(frozen=True)
class Launch:
    issuer: str
    client_id: str
    deployment_id: str
    user_id: str
    name: str = ""
    assignment: Optional[str] = None  # the custom parameter `assignment`, when the LMS link sets it
    lineitem: Optional[str] = None  # where the score goes (AGS), when the platform allows us to post scores
    message_type: str = RESOURCE_LINK
    email: str = ""
    roles: tuple[str, ...] = ()
    resource_link_id: Optional[str] = None
    lineitems: Optional[str] = None  # the course's line item container, when we may manage line items
    memberships: Optional[str] = None  # NRPS context_memberships_url, when the platform grants the roster
    deep_link: Optional[dict] = None  # a deep-linking launch's settings: deep_link_return_url, data, accept_*

    @property
    def teaches(self) -> bool:
        return teaches(self.roles)

    @property
    def shown_name(self) -> str:
        """The name the platform's privacy settings let through: name, else email, else the opaque user id."""
        return self.name or self.email or self.user_id

    def passback(self) -> Optional[dict]:
        """Where the score goes: the launch's line item, or the course's line item container (the assignment's
        line item is found or made there at passback); both on the platform's own hosts (checked at launch)."""
        if not self.lineitem and not self.lineitems:
            return None
        where = {"lineitem": self.lineitem} if self.lineitem else {"lineitems": self.lineitems,
                                                                   "resource_link_id": self.resource_link_id}
        return {"issuer": self.issuer, "client_id": self.client_id, **where, "user_id": self.user_id}


@dataclass(frozen=True)
class Login:
    """The answer to a login initiation: the redirect to the platform, and the cookie that binds the browser."""
    redirect: str
    cookie: str  # its name
    secret: str  # its value


def _refused(what: str, fix: str, where: str = "id_token", status: int = 401) -> ServiceError:
    return ServiceError(status, "lti_launch_refused", what, where=where, fix=fix)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class PlatformKeys:
    """Each platform's JWKS, fetched on first need and again when a token names a key we have not seen (rotation)."""

    def __init__(self, http: httpx.Client):
        self.http = http
        self._sets: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._lock = threading.Lock()

    def _fetch(self, platform: Platform) -> jwt.PyJWKSet:
        try:
            response = self.http.get(platform.key_set_url)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            raise _refused(f"the platform's keys could not be fetched from {platform.key_set_url} ({exc})",
                           "check key_set_url in the platform file and that this server can reach it",
                           where="key_set_url") from None
        self._sets[platform.key_set_url] = (time.monotonic(), keys)
        return keys

    def key(self, platform: Platform, kid: Optional[str]):
        with self._lock:
            fetched_at, keys = self._sets.get(platform.key_set_url, (0.0, None))
            for attempt in range(2):
                if keys is not None:
                    found = [k for k in keys.keys if k.key_id == kid]
                    if found:
                        return found[0].key
                if attempt == 0 and time.monotonic() - fetched_at > 10:  # at most one refetch per 10 s
                    keys = self._fetch(platform)
        raise _refused(f"the id_token is signed with key {kid!r}, which the platform's JWKS does not hold",
                       "check key_set_url in the platform file: it must be this LMS's JWKS URL", where="kid")


class Launcher:
    def __init__(self, registrations: Registrations, store: Store, key: ToolKey, base_url: str, http: httpx.Client):
        self.registrations, self.store, self.key = registrations, store, key
        self.base_url = base_url.rstrip("/")
        self.platform_keys = PlatformKeys(http)

    @property
    def login_url(self) -> str:
        return self.base_url + "/lti/login"

    @property
    def launch_url(self) -> str:
        return self.base_url + "/lti/launch"

    def _platform(self, issuer: str, client_id: Optional[str], where: str) -> Platform:
        platform = self.registrations.find(issuer, client_id)
        if platform is None:
            who = f"issuer {issuer!r}" + (f" with client_id {client_id!r}" if client_id else "")
            raise ServiceError(400, "lti_unknown_platform", f"{who} is not registered on this tool", where=where,
                               fix=REGISTER)
        return platform

    def login(self, params: Mapping[str, str]) -> Login:
        """OIDC login initiation: the platform's authentication request to redirect the browser to, and the
        cookie the browser must send back with the launch."""
        missing = [name for name in ("iss", "login_hint", "target_link_uri") if not params.get(name)]
        if missing:
            raise ServiceError(400, "lti_login", f"the login initiation lacks {', '.join(missing)}",
                               where="/lti/login", fix="start the launch from the LMS; it sends these parameters")
        platform = self._platform(params["iss"], params.get("client_id") or None, "/lti/login")
        target = urlsplit(params["target_link_uri"])
        if (target.scheme, target.netloc) != (urlsplit(self.base_url).scheme, urlsplit(self.base_url).netloc):
            raise ServiceError(400, "lti_login", f"target_link_uri {params['target_link_uri']!r} is not on this tool "
                               f"({self.base_url})", where="target_link_uri",
                               fix=f"set the tool's target link URI in the LMS to {self.launch_url}, and start the "
                                   f"server with --public-url as the LMS reaches it")
        state, nonce, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.store.put_state(state, {"issuer": platform.issuer, "client_id": platform.client_id, "nonce": nonce,
                                     "browser": _digest(secret)}, STATE_SECONDS)
        query = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
                 "client_id": platform.client_id, "redirect_uri": self.launch_url, "login_hint": params["login_hint"],
                 "state": state, "nonce": nonce}
        if params.get("lti_message_hint"):
            query["lti_message_hint"] = params["lti_message_hint"]
        separator = "&" if urlsplit(platform.auth_login_url).query else "?"
        return Login(platform.auth_login_url + separator + urlencode(query), STATE_COOKIE + state, secret)

    def launch(self, id_token: Optional[str], state: Optional[str], cookies: Mapping[str, str]) -> Launch:
        """The id_token POST, validated: the browser's state cookie, signature (platform JWKS), iss, aud, exp,
        nonce, deployment, message type, and the AGS line item on the platform's own hosts."""
        if not id_token or not state:
            raise _refused("the launch has no id_token or no state", "start the launch from the LMS",
                           where="/lti/launch")
        expected = self.store.get_state(state)
        if expected is None:
            raise _refused("the launch's state is unknown or expired", "open the assignment from the course again; "
                           f"between login and launch at most {STATE_SECONDS // 60} minutes may pass", where="state")
        if not hmac.compare_digest(_digest(cookies.get(STATE_COOKIE + state, "")), expected.get("browser", "")):
            raise _refused("this browser did not start this launch: the cookie our login set is missing or is "
                           "another launch's",
                           "open the assignment from your course page again, in this browser. If this keeps "
                           "happening, the browser blocks cookies for tools shown inside the course page: allow "
                           "them for this site, or ask your instructor to make the link open in a new window",
                           where="state cookie")
        platform = self._platform(expected["issuer"], expected["client_id"], "state")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.DecodeError as exc:
            raise _refused(f"the id_token is not a JWT ({exc})", "start the launch from the LMS") from None
        if not header.get("kid"):
            raise _refused("the id_token's header names no key (no kid): it cannot be matched to the platform's "
                           "keys", "the LMS must sign launches with a key from its JWKS and name it in kid",
                           where="kid")
        key = self.platform_keys.key(platform, header["kid"])
        claims = self._decode(id_token, key, platform)
        self._check_claims(claims, platform, expected["nonce"])
        if not self.store.use_nonce(claims["nonce"], claims["exp"] - time.time() + 2 * LEEWAY_SECONDS):
            raise _refused("the id_token's nonce was used before: this launch is a replay",
                           "open the assignment from the course again: each launch is used once", where="nonce")
        lineitem, lineitems = self._lineitems(claims, platform)
        kind = claims[CLAIM + "message_type"]
        settings = claims.get(DL_SETTINGS)
        deep_link = {k: settings[k] for k in DL_KEPT if k in settings} if isinstance(settings, dict) else None
        name = claims.get("name") or " ".join(str(claims[k]) for k in ("given_name", "family_name") if claims.get(k))
        return Launch(issuer=platform.issuer, client_id=platform.client_id,
                      deployment_id=claims[CLAIM + "deployment_id"], user_id=str(claims["sub"]),
                      name=str(name or ""), email=str(claims.get("email") or ""),
                      assignment=self._assignment(claims), lineitem=lineitem, lineitems=lineitems,
                      message_type=kind, roles=tuple(claims[CLAIM + "roles"]),
                      resource_link_id=(claims.get(CLAIM + "resource_link") or {}).get("id"),
                      memberships=self._service_url(claims, platform, NRPS_CLAIM, "context_memberships_url"),
                      deep_link=deep_link if kind == DEEP_LINKING else None)

    @staticmethod
    def _assignment(claims: dict) -> Optional[str]:
        """The link's custom parameter `assignment`: the link, not the student, says what is graded."""
        custom = claims.get(CLAIM + "custom")
        if custom is not None and not isinstance(custom, dict):
            raise _refused(f"the id_token's custom claim is a {type(custom).__name__}, not an object",
                           "the LMS must send custom parameters as a JSON object", where="custom", status=400)
        assignment = (custom or {}).get("assignment")
        return assignment if isinstance(assignment, str) and assignment.strip() else None

    @classmethod
    def _lineitems(cls, claims: dict, platform: Platform) -> tuple[Optional[str], Optional[str]]:
        """The AGS line item the score goes to, when the platform grants the score scope; else the line item
        container, when it also grants the line item scope (we find or make the assignment's line item there)."""
        ags = claims.get(AGS_CLAIM)
        if ags is None:
            return None, None
        scope = ags.get("scope") if isinstance(ags, dict) else None
        if not isinstance(scope, list) or not all(isinstance(ags.get(k) or "", str) for k in ("lineitem", "lineitems")):
            raise _refused("the id_token's Assignment and Grade Services claim is not an object with a scope list "
                           "and line item URLs", "the LMS must send the AGS endpoint claim as LTI 1.3 defines it",
                           where=AGS_CLAIM, status=400)
        if SCORE_SCOPE not in scope:
            return None, None
        lineitem = cls._service_url(claims, platform, AGS_CLAIM, "lineitem")
        lineitems = cls._service_url(claims, platform, AGS_CLAIM, "lineitems") if LINEITEM_SCOPE in scope else None
        return lineitem, lineitems

    @staticmethod
    def _service_url(claims: dict, platform: Platform, claim: str, field: str) -> Optional[str]:
        """A service URL of a claim (AGS line item(s), NRPS memberships). It must be on the platform's own
        hosts: our access token goes wherever it points."""
        found = claims.get(claim)
        url = found.get(field) if isinstance(found, dict) else None
        if url is None or url == "":
            return None
        if not isinstance(url, str):
            raise _refused(f"the id_token's {field} is not a URL", f"the LMS must send {claim} as LTI defines it",
                           where=claim, status=400)
        if not platform.serves(url):
            raise _refused(f"the {field} {url[:200]!r} is not on {platform.label}'s own hosts "
                           f"({', '.join(platform.origins)}); our access token goes nowhere else",
                           f"if {platform.label}'s grade book answers at that host, add its origin to ags_origins "
                           f"for {platform.label} in the platform file", where=field, status=400)
        return url

    @staticmethod
    def _decode(id_token: str, key, platform: Platform) -> dict:
        try:
            return jwt.decode(id_token, key, algorithms=["RS256"], audience=platform.client_id, issuer=platform.issuer,
                              leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]})
        except jwt.ExpiredSignatureError:
            raise _refused("the id_token has expired", "open the assignment from the course again; if this keeps "
                           "happening, check the clocks of the LMS and of this server", where="exp") from None
        except jwt.ImmatureSignatureError:
            raise _refused("the id_token was issued in the future (its iat is later than now)",
                           "check the clocks of the LMS and of this server", where="iat") from None
        except jwt.InvalidIssuedAtError:
            raise _refused("the id_token's iat is not a time", "the LMS must send iat as seconds since 1970",
                           where="iat") from None
        except jwt.InvalidAudienceError:
            raise _refused(f"the id_token is not addressed to this tool (its aud is not client_id "
                           f"{platform.client_id!r})", f"check client_id for {platform.label} in the platform file: "
                           "it must be the client id the LMS gave this tool", where="aud") from None
        except jwt.InvalidIssuerError:
            raise _refused(f"the id_token was not issued by {platform.issuer}", "check issuer in the platform file",
                           where="iss") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"the id_token has no {exc.claim!r} claim", "the LMS must send an LTI 1.3 id_token",
                           where=exc.claim) from None
        except jwt.InvalidSignatureError:
            raise _refused(f"the id_token's signature does not verify with {platform.label}'s keys",
                           "the token was altered, or key_set_url in the platform file is not this LMS's JWKS URL",
                           where="signature") from None
        except jwt.InvalidTokenError as exc:
            raise _refused(f"the id_token is not valid ({exc.__class__.__name__}: {exc})",
                           "open the assignment from the course again") from None

    @staticmethod
    def _check_claims(claims: dict, platform: Platform, nonce: str) -> None:
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != platform.client_id:
            raise _refused("the id_token has several audiences and its azp is not this tool's client id",
                           "the LMS must name this tool as the authorized party (azp)", where="azp")
        if claims["nonce"] != nonce:
            raise _refused("the id_token's nonce is not the one this launch's login sent",
                           "open the assignment from the course again", where="nonce")
        version, kind = claims.get(CLAIM + "version"), claims.get(CLAIM + "message_type")
        if version is None and kind is None:
            raise _refused("the id_token is not an LTI launch: it has no LTI version and no message type",
                           "start the launch from the LMS's LTI 1.3 tool link", where="version")
        if version != "1.3.0":
            raise _refused(f"LTI version {version!r}; this tool speaks 1.3.0",
                           "register the tool in the LMS as an LTI 1.3 tool", where="version")
        if kind not in (RESOURCE_LINK, DEEP_LINKING):
            raise _refused(f"message type {kind!r}: this tool handles {RESOURCE_LINK} and {DEEP_LINKING} launches",
                           "add the tool to the course as an assignment (resource link) or through deep linking",
                           where="message_type")
        deployment = claims.get(CLAIM + "deployment_id")
        if not deployment:
            raise _refused("the id_token has no deployment_id", "the LMS must send the deployment id claim",
                           where="deployment_id")
        if deployment not in platform.deployment_ids:
            raise _refused(f"deployment {deployment!r} of {platform.label} is not registered",
                           f"add it to deployment_ids for {platform.label} in the platform file",
                           where="deployment_id")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise _refused("the id_token's sub (the user id) is empty", "the LMS must send the user's id in sub",
                           where="sub")
        roles = claims.get(CLAIM + "roles")
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise _refused("the id_token has no roles claim (a list, empty when the user has none)",
                           "the LMS must send the roles claim", where="roles")
        if kind == RESOURCE_LINK:
            link = claims.get(CLAIM + "resource_link")
            if not isinstance(link, dict) or not isinstance(link.get("id"), str) or not link["id"]:
                raise _refused("the id_token has no resource link id", "the LMS must send the resource_link claim "
                               "with the link's id", where="resource_link")
        else:
            settings = claims.get(DL_SETTINGS)
            url = settings.get("deep_link_return_url") if isinstance(settings, dict) else None
            if not isinstance(url, str) or urlsplit(url).scheme not in ("https", "http"):
                raise _refused("the deep-linking launch has no deep_link_return_url",
                               "the LMS must send the deep_linking_settings claim with its return URL",
                               where="deep_linking_settings")
            accepted = settings.get("accept_types") if isinstance(settings, dict) else None
            if isinstance(accepted, list) and CONTENT_TYPE not in accepted:
                raise _refused(f"this deep-linking request accepts {', '.join(map(str, accepted))}, and this tool "
                               f"returns an {CONTENT_TYPE} (a graded link)",
                               "add the tool from the LMS's assignment or activity picker, where it accepts LTI "
                               "links", where="accept_types", status=400)

    # The upload page of a launch: the launch travels on as a JWT signed by us, audience our upload URL.

    def session(self, launch: Launch) -> str:
        now = int(time.time())
        return self.key.sign({"iss": self.base_url, "aud": self.base_url + "/lti/upload", "iat": now,
                              "exp": now + SESSION_SECONDS, "sub": launch.user_id, "launch": asdict(launch)})

    def from_session(self, token: str) -> Launch:
        try:
            claims = self.key.verify(token, audience=self.base_url + "/lti/upload")
        except jwt.ExpiredSignatureError:
            raise _refused("this upload page has expired", "open the assignment from the course again",
                           where="launch") from None
        except jwt.InvalidTokenError:
            raise _refused("the upload page's launch is not valid", "open the assignment from the course again",
                           where="launch") from None
        return Launch(**claims["launch"])
