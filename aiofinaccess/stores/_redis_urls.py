"""Reading a :class:`~aiofinaccess.stores.redis.RedisStore` URL: which client it asks for, the TLS
options it must get, and how to name it in a log without its password. Pure: no I/O, no redis-py.
"""

from __future__ import annotations

import math
from typing import Final
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from ..core.errors import ConfigurationError
from .replication import Replication

__all__ = ["CLUSTER_SCHEMES", "describe", "target", "tls_options", "wait_options"]

#: The cluster schemes and the plain scheme redis-py's cluster client reads instead.
CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def describe(url: str) -> str:
    """``url`` without user or password: scheme, host, port (or socket path) and db."""
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", [""])[0]  # redis-py: the query's db wins
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db={db or 0}"
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    if parts.scheme in CLUSTER_SCHEMES:
        return f"{parts.scheme}://{host}:{parts.port or 6379}"
    return f"{parts.scheme}://{host}:{parts.port or 6379}/{db or parts.path.strip('/') or 0}"


#: What ``ssl_check_hostname`` may say: values redis-py reads as true and a reader does too.
_YES: Final = frozenset({"true", "1", "yes", "y", "t", "on"})


def tls_options(url: str) -> dict[str, bool]:
    """For ``rediss://``: ask for the hostname check, and refuse a URL that turns checks off.

    redis-py 5.x defaulted ``ssl_check_hostname`` to False, so any certificate from a trusted
    CA, for any name, was accepted; it is passed explicitly whatever the installed default.
    Options in the URL override keyword arguments in redis-py, hence the refusal. redis-py
    obeys the first value of a repeated option, so a TLS option given twice (in any letter
    case) is refused outright, and every value is checked, not just one.
    """
    if urlsplit(url).scheme not in ("rediss", "rediss+cluster"):
        return {}
    options = [
        (name.lower(), value.strip().lower())
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        if name.lower().startswith("ssl_")
    ]
    names = [name for name, _ in options]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigurationError(
            f"url gives the TLS option {repeated[0]} more than once: refused (redis-py would "
            "obey the first)"
        )
    for name, value in options:
        if (name == "ssl_check_hostname" and value not in _YES) or (
            name == "ssl_cert_reqs" and value != "required"
        ):
            raise ConfigurationError(
                "url turns TLS certificate verification off; RedisStore always verifies "
                "(pass your own client= to decide otherwise)"
            )
    return {"ssl_check_hostname": True}


#: The URL options of :class:`~aiofinaccess.core.replication.Replication`, read by the store and
#: never handed to redis-py.
_WAIT_OPTIONS: Final = ("wait_replicas", "wait_timeout", "wait_fsync")


def wait_options(url: str) -> tuple[str, Replication | None]:
    """``url`` without the ``wait_*`` options, and the :class:`Replication` they ask for.

    ``?wait_replicas=1`` asks for one replica (``wait_timeout=SECONDS``, default 1;
    ``wait_fsync=yes`` for ``WAITAOF``); without ``wait_replicas`` there is none.

    Raises:
        ConfigurationError: A ``wait_*`` option given twice, without ``wait_replicas``, or
            with a bad value.
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = [(name.lower(), value.strip()) for name, value in pairs if name.lower() in _WAIT_OPTIONS]
    if not ours:
        return url, None
    found = dict(ours)
    if len(found) != len(ours):
        raise ConfigurationError("url gives a wait_* option more than once")
    if "wait_replicas" not in found:
        raise ConfigurationError("url gives wait_timeout or wait_fsync without wait_replicas")
    try:
        replicas = int(found["wait_replicas"])
        timeout = float(found.get("wait_timeout", "1"))
    except ValueError:
        raise ConfigurationError("url's wait_replicas or wait_timeout is not a number") from None
    if not math.isfinite(timeout):
        raise ConfigurationError("url's wait_timeout must be a positive number of seconds")
    fsync = found.get("wait_fsync", "no").lower()
    if fsync not in _YES | {"false", "0", "no", "n", "f", "off"}:
        raise ConfigurationError("url's wait_fsync must be yes or no")
    rest = urlencode([(name, value) for name, value in pairs if name.lower() not in _WAIT_OPTIONS])
    settings = Replication(replicas=replicas, timeout=timeout, fsync=fsync in _YES)
    return parts._replace(query=rest).geturl(), settings


def target(url: str) -> tuple[str, bool, dict[str, bool]]:
    """The URL to hand redis-py, whether it names a cluster, and the TLS keyword arguments.

    Raises:
        ConfigurationError: Not a Redis URL, or one that turns TLS checks off (the message
            never quotes it: it may hold a password).
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix", *CLUSTER_SCHEMES):
        raise ConfigurationError(
            "url must start with redis://, rediss://, unix://, redis+cluster:// or "
            "rediss+cluster://"
        )
    tls = tls_options(url)
    if scheme in CLUSTER_SCHEMES:
        return CLUSTER_SCHEMES[scheme] + url[len(scheme) :], True, tls
    return url, False, tls
