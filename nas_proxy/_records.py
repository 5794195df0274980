"""Write-once study attributes that several workers may try to write at the same instant."""

from __future__ import annotations

import json
from typing import Any

import optuna


def as_stored(value: Any) -> Any:
    """``value`` as a study's storage returns it (JSON: tuples become lists, keys strings), so a record read
    back compares equal to the value it was written from."""
    return json.loads(json.dumps(value))


def record_once(study: optuna.Study, key: str, value: Any) -> Any:
    """Record ``value`` as the study's user attribute ``key`` unless one is there; return the recorded value.

    Workers starting together each find the key missing and write. A database storage refuses the
    second insert of a key (a unique constraint): that worker lost the race, and the first record
    stands. A journal file keeps the last write; :func:`nas_proxy.artifacts.shared_file` waits for
    such a race to settle where it matters.
    """
    recorded = study.user_attrs.get(key)
    if recorded is not None:
        return recorded
    try:
        study.set_user_attr(key, value)
    except Exception:  # sqlalchemy's IntegrityError (an optional dependency): the racing insert landed first
        recorded = study.user_attrs.get(key)
        if recorded is None:
            raise
        return recorded
    return study.user_attrs[key]
