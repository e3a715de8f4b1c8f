"""The survey tests' clients and dispatcher (tests/survey/conftest.py): review links are
answered the same way, through the real SMTP sink."""

from tests.survey.conftest import client, dispatcher, settings

__all__ = ["client", "dispatcher", "settings"]
