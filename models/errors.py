"""The small exception hierarchy every reachwatch module raises from."""

from __future__ import annotations


class ReachwatchError(Exception):
    """Base class for errors reachwatch raises on purpose."""


class SchemaError(ReachwatchError):
    """An input record that cannot become an access event.

    ``code`` is a short, stable, machine-readable reason (used as a metric label and in
    dead letters); ``detail`` says precisely what was wrong, for humans.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ModelIntegrityError(ReachwatchError):
    """A model artifact is missing, tampered with, or incompatible with this code."""


class RegistryError(ReachwatchError):
    """The model registry cannot do what was asked (unknown version, nothing promoted...)."""


class ConfigError(ReachwatchError):
    """A setting or mapping file is invalid."""
