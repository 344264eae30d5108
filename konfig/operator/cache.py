"""The Konfig custom resources as the watch last delivered them (an informer's store, in
Kubernetes terms): change passes read them here instead of listing every kind again, so a
change costs the same at 10 or 1,000 domains. Startup and resync passes list from the API
server and replace the store (the watch may have missed something while the operator was
down or a watch was re-established)."""

from __future__ import annotations

import copy
import threading
from typing import Any, Iterable


class ResourceCache:
    """Bodies by ``metadata.uid``. Thread-safe; :meth:`items` hands out the stored dicts
    (a pass writes status and metadata it got back from the server into them)."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._during: dict[str, dict[str, Any] | None] | None = None
        self._lock = threading.Lock()
        self.primed = False

    def begin(self) -> None:
        """A list is about to start: events from now on win over what it returns (they may
        be newer than what the list saw)."""
        with self._lock:
            self._during = {}

    def replace(self, resources: Iterable[dict[str, Any]]) -> None:
        """Everything there is, freshly listed (after :meth:`begin`), with the events that
        arrived meanwhile applied on top."""
        items = {r["metadata"]["uid"]: r for r in resources if r.get("metadata", {}).get("uid")}
        with self._lock:
            for uid, body in (self._during or {}).items():
                if body is None:
                    items.pop(uid, None)
                else:
                    items[uid] = body
            self._items = items
            self._during = None
            self.primed = True

    def event(self, event_type: str | None, body: dict[str, Any]) -> None:
        """One watch event (``ADDED``, ``MODIFIED``, ``DELETED`` or ``None`` for kopf's
        initial listing)."""
        uid = (body.get("metadata") or {}).get("uid")
        if not uid:
            return
        stored = None if event_type == "DELETED" else copy.deepcopy(body)
        with self._lock:
            if stored is None:
                self._items.pop(uid, None)
            else:
                self._items[uid] = stored
            if self._during is not None:
                self._during[uid] = stored

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())


__all__ = ["ResourceCache"]
