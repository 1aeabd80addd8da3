"""Equality by type for NamedTuple records. A NamedTuple is equal to any tuple of the same values
(`SignalReceived(2) == SignalArrived(2)`, `ChildrenChanged() == TurnEnded()`), a dataclass only
to one of its own class: records that share a stream (events, notices) keep the dataclass's
meaning, so a test asserting one of them still tells them apart."""

from __future__ import annotations

from typing import Any, TypeVar

_Record = TypeVar("_Record", bound=type)


def _same_type_eq(self: tuple[Any, ...], other: object) -> bool:
    return type(other) is type(self) and tuple.__eq__(self, other)


def _same_type_ne(self: tuple[Any, ...], other: object) -> bool:
    return not _same_type_eq(self, other)


def same_type_equality(cls: _Record) -> _Record:
    """Class decorator: instances equal only instances of the same class with equal fields."""
    cls.__eq__ = _same_type_eq  # type: ignore[assignment]
    cls.__ne__ = _same_type_ne  # type: ignore[assignment]
    cls.__hash__ = tuple.__hash__  # type: ignore[assignment]
    return cls
