"""Helpers that the course notebooks import: graphs, gradient checks, devices, settings."""
