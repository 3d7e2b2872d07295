"""How much memory this process may still use, for operators that decide whether to build large tables.

`available_bytes()` is the smallest of: the memory the kernel reports available (psutil when installed, else
/proc/meminfo's MemAvailable, else free pages from os.sysconf) and the room left under a cgroup memory limit
(cgroup v2 memory.max - memory.current, or v1 limit_in_bytes - usage_in_bytes), so that a container's limit
counts, not the host's RAM. None when nothing can be read (then callers assume there is room).
"""

from __future__ import annotations

import os
from pathlib import Path


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _system_available() -> int | None:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:
            return max(0, cap - used)
    return None


def available_bytes() -> int | None:
    """Bytes this process can still allocate without swapping or hitting its cgroup limit (None: unknown)."""
    known = [b for b in (_system_available(), _cgroup_room()) if b is not None]
    return min(known) if known else None


def format_bytes(n: int) -> str:
    """1.23 GB / 45.6 MB / 789 kB (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
