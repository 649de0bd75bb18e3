"""Tests of postgit-core's pure logic: no database, no network."""
