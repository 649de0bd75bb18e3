"""Turn a workflow FILE into its definition JSON: a ``.json`` file is read, a ``.py`` module needs the SDK.

A ``.py`` file builds its workflow with the ``postgit`` SDK (``postgit-core``), which the CLI does not depend on:
when it is installed, :func:`postgit.definition.load_definition_file` imports the file and calls ``workflow()``;
when it is not, the error says how to install it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from postgit_cli import install_hints
from postgit_cli.errors import CliError

SDK_HINT = install_hints.SDK


def load_workflow_file(path: Path) -> dict[str, Any]:
    """The definition JSON of ``path`` (not validated: the server does that on deploy).

    Raises:
        CliError: the file is missing, is not valid JSON, is neither ``.py`` nor ``.json``, needs the SDK that is
            not installed, does not import, or has no ``workflow()``. The message names the file.
    """
    if not path.is_file():
        raise CliError(f"{path}: no such file", exit_code=2)
    if path.suffix == ".json":
        return _load_json(path)
    if path.suffix == ".py":
        return _load_python(path)
    raise CliError(f"{path}: must be a .py module with workflow() or a .json definition", exit_code=2)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}", exit_code=2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path} cannot be read: {exc}", exit_code=2) from None
    if not isinstance(definition, dict):
        raise CliError(f"{path}: a definition must be a JSON object (the root node)", exit_code=2)
    return definition


def _load_python(path: Path) -> dict[str, Any]:
    try:
        from postgit.definition import load_definition_file
        from postgit.errors import PostgitError
    except ImportError:
        raise CliError(f"{path} needs the Postgit SDK: {SDK_HINT}") from None
    try:
        # The user's module may print; keep stdout for the command's own output (e.g. --json).
        with contextlib.redirect_stdout(sys.stderr):
            definition = load_definition_file(path)
    except PostgitError as exc:
        raise CliError(str(exc), exit_code=2) from None
    except (Exception, SystemExit) as exc:  # anything else the user's code raises while being read
        raise CliError(f"{path}: {type(exc).__name__}: {exc}", exit_code=2) from None
    if not isinstance(definition, dict):
        raise CliError(f"{path}: workflow() did not produce a definition object", exit_code=2)
    return definition
