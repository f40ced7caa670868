"""URIs in messages and records: never with a password in them."""

from __future__ import annotations

import re
from urllib.parse import urlparse

_USERINFO = re.compile(r"(?<=://)([^/@\s:]*):[^/@\s]*@")


def redact_uri(uri: str) -> str:
    """The URI without its password (``postgresql://user:***@host/db``).

    Never raises: a URI too malformed to parse still has anything that looks like a password
    masked, so an error message about it leaks nothing.
    """
    try:
        parts = urlparse(uri)
        password = parts.password
    except ValueError:
        return _USERINFO.sub(r"\1:***@", uri)
    if password is None:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1)).geturl()
