"""AIPROD: self-hosted AI video production."""

__version__ = "0.1.0"
