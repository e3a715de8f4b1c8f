"""aftersale: post-sale lifecycle email."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version


def version() -> str:
    """The installed package's version (pyproject.toml), one source for the CLI and the API."""
    try:
        return _installed_version("aftersale")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"
