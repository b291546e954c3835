"""The project's liblsl configuration: discovery stays on this machine (loopback).

liblsl reads its configuration once, at its first API call, so :func:`pylsl_module` must be the
only way the project reaches ``pylsl``: it applies the configuration first and then returns the
module. A user who sets ``LSLAPICFG`` (a liblsl config file) keeps theirs: that is how a lab opens
discovery to its network on purpose.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

#: ResolveScope machine + KnownPeers 127.0.0.1: resolve works without a network and never
#: announces streams to the LAN; liblsl's own log is silenced (our loggers report instead).
#: Without multicast, discovery probes KnownPeers on ports BasePort..BasePort+PortRange only, and
#: every outlet takes two of them (IPv4 + IPv6): liblsl's default range of 32 holds 16 outlets on
#: the machine; the 17th gets a random port and is never found. 256 holds 128.
LOCAL_CONFIG = (
    "[multicast]\n"
    "ResolveScope = machine\n"
    "[ports]\n"
    "PortRange = 256\n"
    "[lab]\n"
    "KnownPeers = {127.0.0.1}\n"
    "[log]\n"
    "level = -3\n"
)

_lock = threading.Lock()
_configured = False


def pylsl_module():
    """Return ``pylsl`` with the local-only configuration applied (once, before any other call)."""
    global _configured
    import pylsl

    with _lock:
        if not _configured:
            if os.environ.get("LSLAPICFG"):
                log.info("liblsl configuration from LSLAPICFG=%s", os.environ["LSLAPICFG"])
            else:
                pylsl.set_config_content(LOCAL_CONFIG)
                log.debug("liblsl configured for this machine only (ResolveScope machine)")
            _configured = True
    return pylsl
