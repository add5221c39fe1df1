"""One call at a time changes a Network: the guard of every method that changes one."""
from __future__ import annotations

import functools

from ...errors import NetworkBusyError


def exclusive(method):
    """A Network method that changes the network: it fails with NetworkBusyError, instead of
    waiting or interleaving, while another such call on the same Network is in progress."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if not self._lock.acquire(blocking=False):
            raise NetworkBusyError(f"cannot {method.__name__}: {self._busy_with} is in progress on this Network "
                                   "(in another thread?)", None,
                                   "one call at a time changes a Network: wait for it to end, or give each "
                                   "thread its own Network (Networks of the same structure share the module)")
        self._busy_with = f"{method.__name__}()"
        try:
            return method(self, *args, **kwargs)
        finally:
            self._lock.release()
    return guarded
