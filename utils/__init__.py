"""Helpers that the course notebooks import: graphs, gradient checks, grading, data, training, plots, memory, devices, settings."""
