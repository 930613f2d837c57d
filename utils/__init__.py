"""Helpers that the course notebooks import: graphs, gradient checks, grading, data, training, plots, memory,
devices, timing, settings."""

COURSE = "autodiff-course"
"""The mark the notebooks' setup cell looks for: a `utils` without it is somebody else's (a student's utils.py)."""
