"""LTI 1.3: platform registrations (config.py), our signing key and JWKS (keys.py), the OIDC launch
(launch.py) and grade passback through Assignment and Grade Services (ags.py).

PyJWT and cryptography rather than pylti1p3: the tool needs four checks on one
token, one signed assertion and one POST, and pylti1p3 brings a framework
adapter layer (Django/Flask sessions and cookies) that does not fit FastAPI and
LMS iframes, where third-party cookies are blocked.
"""
