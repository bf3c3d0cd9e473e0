"""The package version, in one place (``flowforge --version``, ``flowforge.__version__``)."""

__version__ = "0.1.0"
