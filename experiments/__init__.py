"""Experiment entry points and configs (run from the repository root)."""
