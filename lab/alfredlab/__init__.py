"""alfredlab: network-namespace mesh lab for alfred daemons (stdlib only).

Typical use::

    from alfredlab import Lab, LinkParams
    with Lab(4, link="vde", params=LinkParams(loss=5)) as lab:
        lab.start_all("/usr/sbin/alfred", primaries=(1, 2), period=1)
        lab.node(3).set(64, b"hello")
        print(lab.node(4).read(64))
"""

from .lab import (BASE_DIR, DEFAULT_BIN, DEFAULT_DEBIAN, IPV4_GROUP, DaemonCrashed, Lab,
                  LinkParams, Node, alfred_bin, cleanup_stale, debian_bin, preflight)
from .converge import ConvergenceResult, NodeResult, wait_converged
from .records import ParseError, escape, parse_lines, parse_records, parse_records_verbose, unescape
from .util import LabError, eui64_linklocal
from . import protocol
from .events import EventMonitor

__all__ = [
    "BASE_DIR", "DEFAULT_BIN", "DEFAULT_DEBIAN", "IPV4_GROUP", "DaemonCrashed", "Lab", "LinkParams",
    "Node", "alfred_bin", "cleanup_stale", "debian_bin", "preflight", "ConvergenceResult",
    "NodeResult", "wait_converged", "ParseError", "escape", "parse_lines", "parse_records",
    "parse_records_verbose", "unescape", "LabError", "eui64_linklocal", "protocol", "EventMonitor",
]
