"""Equality by type for NamedTuple records. A NamedTuple is equal to any tuple of the same values
(`SignalReceived(2) == SignalArrived(2)`, `ChildrenChanged() == TurnEnded()`), a dataclass only
to one of its own class: records that share a stream (events, notices) keep the dataclass's
meaning, so a test asserting one of them still tells them apart."""

from __future__ import annotations

from collections.abc import Callable
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


def compared_fields(count: int) -> Callable[[_Record], _Record]:
    """Class decorator: as same_type_equality, on the first `count` fields only (the ones after
    them are bookkeeping, as a dataclass's `field(compare=False)`)."""

    def eq(self: tuple[Any, ...], other: object) -> bool:
        return type(other) is type(self) and self[:count] == other[:count]

    def ne(self: tuple[Any, ...], other: object) -> bool:
        return not eq(self, other)

    def hash_(self: tuple[Any, ...]) -> int:
        return hash(self[:count])

    def decorate(cls: _Record) -> _Record:
        cls.__eq__ = eq  # type: ignore[assignment]
        cls.__ne__ = ne  # type: ignore[assignment]
        cls.__hash__ = hash_  # type: ignore[assignment]
        return cls

    return decorate
