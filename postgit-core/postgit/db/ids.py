"""Instance ids: UUID version 7 (RFC 9562), whose leading bits are the creation time in milliseconds.

Ids created close in time sort close together, so the indexes keyed by instance id (the instances' primary key,
the steps' and events' keys) grow at their right edge instead of at random pages: a table holding millions of
older instances does not make inserting new ones slower.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A new version-7 UUID: 48 bits of Unix time in ms, the version, 74 random bits and the variant."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return uuid.UUID(int=value)
