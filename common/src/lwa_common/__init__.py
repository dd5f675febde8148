"""lwa_common: the shared library of lwa-pipe (OVRO-LWA imaging and science pipeline)."""

from lwa_common.errors import LwaError

__all__ = ["LwaError", "__version__"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lwa-common")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


__version__ = _version()
