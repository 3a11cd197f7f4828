"""Our RSA key: it signs the client assertions of grade passback and the launch sessions of our own pages,
and its public half is served at /.well-known/jwks.json. Created on first start, kept in a 0600 file (--key, or beside
a SQLite store), or, for a PostgreSQL store without --key, in the store itself: every node signs with the same key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from grader.errors import GraderError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_pem() -> bytes:
    """A new 2048-bit RSA key, as unencrypted PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class ToolKey:
    def __init__(self, private_key: rsa.RSAPrivateKey):
        self.private = private_key
        self.public = private_key.public_key()
        jwk = RSAAlgorithm.to_jwk(self.public, as_dict=True)
        # RFC 7638 thumbprint: a kid that changes exactly when the key does.
        canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
        self.kid = _b64(hashlib.sha256(canonical.encode()).digest())
        self.jwk = {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    @classmethod
    def load_or_create(cls, path: Path) -> ToolKey:
        path = Path(path)
        if not path.exists():
            pem = new_pem()
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            partial.replace(path)
        return cls.from_pem(path.read_bytes(), str(path))

    @classmethod
    def from_pem(cls, pem: bytes, where: str) -> ToolKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise GraderError(f"not an unencrypted PEM private key ({exc})", where=where,
                              fix="point --key at the PEM file the server created, or delete it to make a new one "
                                  "(LMSs that cached the old public key fetch the new one from our JWKS URL)") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise GraderError("the key is not an RSA key", where=where, fix="use an RSA key of 2048 bits or more")
        return cls(key)

    def jwks(self) -> dict:
        return {"keys": [self.jwk]}

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str, *, audience: str) -> dict:
        return jwt.decode(token, self.public, algorithms=["RS256"], audience=audience,
                          options={"require": ["exp", "iat", "aud"]})

    def client_assertion(self, client_id: str, audience: str, lifetime: float = 300) -> str:
        """The JWT that authenticates us at a platform's token endpoint (RFC 7523, as LTI's security framework asks)."""
        now = int(time.time())
        return self.sign({"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + int(lifetime),
                          "jti": uuid.uuid4().hex})
