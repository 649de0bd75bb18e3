"""Helpers shared by the test suite: waiting on conditions and running Postgit processes."""
