"""What the testing kit raises when a test cannot go on."""

from __future__ import annotations

from postgit.errors import PostgitError


class PostgitTestingError(PostgitError):
    """The kit cannot do what a test asked (no database, a mock that matches nothing, an engine that stopped)."""


class InstanceStuck(PostgitTestingError):
    """An instance waits for something only the test can send (an event), and no timer is left to skip to."""


class WaitTimeout(PostgitTestingError):
    """An instance did not finish within the real time a test allowed it."""
