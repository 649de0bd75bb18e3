"""Postgit's built-in node types, each in its own module with its own ``postgit`` entry point."""
