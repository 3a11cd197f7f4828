"""LTI 1.3 and LTI Advantage: platform registrations (config.py), our signing key and JWKS (keys.py), the
OIDC launch (launch.py), calls to the platform's services with client-credentials tokens (tokens.py), grade
passback through Assignment and Grade Services (ags.py) to line items found or created once (lineitems.py),
the course roster through Names and Role Provisioning (nrps.py), the instructor's grade book (gradebook.py),
and the signed answer to a deep-linking request (deep_linking.py).

PyJWT and cryptography rather than pylti1p3: the tool needs a handful of checks on one token, one signed
assertion per service call and one signed deep-linking response, and pylti1p3 brings a framework adapter
layer (Django/Flask sessions and cookies) that does not fit FastAPI and LMS iframes, where third-party
cookies are blocked.
"""
