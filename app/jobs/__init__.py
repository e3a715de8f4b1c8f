"""Periodic jobs that the worker's scheduler runs besides the dispatcher."""
