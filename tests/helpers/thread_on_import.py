"""Starts a thread when imported: a module the warm engine must refuse to fork after."""

from __future__ import annotations

import threading

_STOP = threading.Event()
threading.Thread(target=_STOP.wait, name="started-on-import", daemon=True).start()
