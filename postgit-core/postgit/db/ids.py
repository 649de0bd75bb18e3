"""Instance ids: UUID version 7 (RFC 9562), whose leading bits are the creation time in milliseconds.

Ids created close in time sort close together, so the indexes keyed by instance id (the instances' primary key,
the steps' and events' keys) grow at their right edge instead of at random pages: a table holding millions of
older instances does not make inserting new ones slower.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_AND_VARIANT = 0x7 << 76 | 0x2 << 62
"""Version 7 in bits 76-79, the RFC 9562 variant (0b10) in bits 62-63."""
_RANDOM = (2**80 - 1) & ~(0xF << 76) & ~(0x3 << 62)
"""The 74 bits below the timestamp that are neither version nor variant."""
_SAFE = uuid.SafeUUID.unknown


def uuid7() -> uuid.UUID:
    """A new version-7 UUID: 48 bits of Unix time in ms, the version, 74 random bits and the variant."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & _RANDOM | _VERSION_AND_VARIANT
    # what uuid.UUID(int=value) stores, without its checks of an argument that is in range by construction
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _SAFE)
    return made
