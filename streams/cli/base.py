"""What the command modules share: one-line failures, the ingest chain's options, model refs.

Every command fails with one line on stderr and a non-zero exit on bad input; none prints
a traceback for an expected problem. ``Commands`` (the group class of ``reachwatch`` and
its subgroups) turns reachwatch's own errors and OS errors into that line, so no command
repeats it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from reachwatch.models.errors import ReachwatchError

# The registry the offline commands use when none is given; the service's default comes
# from its settings (``REACHWATCH_REGISTRY_DIR``), which default to the same place.
DEFAULT_REGISTRY = Path("var/models")
Decorator = Callable[[Any], Any]


class Failure(click.ClickException):
    """A one-line error with exit status 2 (bad input), or 1 for other failures."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message.splitlines()[0] if message else "failed")
        self.exit_code = exit_code


def one_line(exc: BaseException) -> Failure:
    """``exc`` as a ``Failure``: reachwatch errors by their message, OS errors by reason
    and file."""
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return Failure(f"{reason}: {exc.filename}" if exc.filename else reason)
    return Failure(str(exc))


class Commands(click.Group):
    """A click group whose commands fail in one line (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ReachwatchError, OSError) as exc:
            raise one_line(exc) from None

    def group(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Commands)
        return super().group(*args, **kwargs)


def parse_model_ref(ref: str | None) -> tuple[Path | None, str]:
    """``--model`` as (registry dir or None for the default, version or ``current``).

    A registry directory (follow its promoted version), a version folder inside one,
    ``REGISTRY_DIR:VERSION``, or a bare version id of the default registry. A path that
    does not exist is an error, not a version id.

    >>> parse_model_ref(None), parse_model_ref("20260105T0900-ab12")
    ((None, 'current'), (None, '20260105T0900-ab12'))
    >>> parse_model_ref("/srv/models:20260105T0900-ab12")
    (PosixPath('/srv/models'), '20260105T0900-ab12')
    """
    if not ref:
        return None, "current"
    path = Path(ref)
    if path.is_dir():
        if (path / "metadata.json").exists():  # a version folder inside a registry
            return path.parent, path.name
        return path, "current"
    if ":" in ref:
        root, _, version = ref.rpartition(":")
        return Path(root), version
    if "/" in ref or ref.startswith("."):
        raise Failure(f"model registry or version folder {ref} does not exist", 2)
    return None, ref


# -- options ---------------------------------------------------------------------------
def format_option(default: str | None = "native") -> Decorator:
    from reachwatch.streams.formats.adapters import ADAPTER_NAMES

    return click.option(
        "--format",
        "fmt",
        type=click.Choice(ADAPTER_NAMES),
        default=default,
        show_default=default is not None,
        help="Input record format.",
    )


def chain_options(func: Any) -> Any:
    """``--enrich``, ``--pseudonym-key-file``, ``--pseudonymize``: the ingest chain after
    the adapter, the same for files (train, replay) and Kafka (run)."""
    from reachwatch.streams.ingest.pseudonyms import PSEUDONYMIZE_MODES

    func = click.option(
        "--pseudonymize",
        type=click.Choice(PSEUDONYMIZE_MODES),
        default=None,
        help="What to replace by keyed pseudonyms: principals, or principals and resources "
        "(default with a key: principals).",
    )(func)
    func = click.option(
        "--pseudonym-key-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Pseudonymise identities with this HMAC key (keep it out of the repository).",
    )(func)
    return click.option(
        "--enrich",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Mapping file: resource/prefix -> group, sensitivity; principal -> group.",
    )(func)


def limit_options(func: Any) -> Any:
    for name, field, default in (
        ("--max-nesting", "JSON nesting depth", "64"),
        ("--max-field-length", "other text fields (groups, action, source)", "256"),
        ("--max-id-length", "principal and resource ids", "1024"),
    ):
        func = click.option(
            name,
            type=click.IntRange(1),
            default=None,
            help=f"Reject records whose {field} exceed this (default {default}).",
        )(func)
    return func


def limits(max_id_length: int | None, max_field_length: int | None,
           max_nesting: int | None) -> Any:
    from reachwatch.models.records import Limits

    given = {"max_id_length": max_id_length, "max_field_length": max_field_length,
             "max_nesting": max_nesting}
    return Limits(**{k: v for k, v in given.items() if v is not None})


def jobs_option(func: Any) -> Any:
    from reachwatch.models.forked import default_jobs

    return click.option(
        "--jobs",
        type=click.IntRange(1, 2),
        default=default_jobs(),
        show_default=True,
        help="Processes: 2 runs the principal and the resource side side by side "
        "(same output, needs fork).",
    )(func)


def inputs(func: Any) -> Any:
    return click.argument(
        "files",
        nargs=-1,
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
    )(func)


registry_option = click.option(
    "--registry",
    default=str(DEFAULT_REGISTRY),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
