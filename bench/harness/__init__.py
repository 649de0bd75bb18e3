"""Postgit's benchmark harness: PostgreSQL's own commit rate and Postgit's workloads, measured in one run."""
