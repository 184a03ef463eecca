"""``lazy_attribute``: a value computed on its first read and kept on the instance, with no lock.

It is ``functools.cached_property`` without the lock that Python 3.11 takes
around every first read (3.12 dropped it): for a tx result, whose packed
bytes a node computes once per tx of every block, that lock cost about twice
the packing itself. Two threads that race on a first read both compute the
value and one of them keeps it, which is harmless for what this is used on:
a pure function of an immutable object (a frozen dataclass; the value goes
straight into the instance's ``__dict__``, so ``frozen`` does not refuse it).

It is a non-data descriptor: once the value is in the instance's
``__dict__``, every later read is a plain attribute lookup that never calls
``__get__`` again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class lazy_attribute(Generic[T]):  # noqa: N801  (used as a decorator, like property)
    """Decorate a method of no arguments; its result becomes an attribute, computed once."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> lazy_attribute[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | lazy_attribute[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value
