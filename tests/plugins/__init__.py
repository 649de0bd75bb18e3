"""Tests of the plugin loader: entry points, provenance and the errors a broken plugin causes."""
