"""`@record`: the model's typed records at no import cost.

The records of `jobs.py` are on the enqueue path, where importing `dataclasses` (which
imports inspect, ast, dis and tokenize) and `typing` doubled the start-up of `queuectl
enqueue` (measured: 40 ms to 80 ms). To the type checker `record` is
`dataclasses.dataclass`, so construction and fields are checked as for one. At run time
a frozen record is a named tuple underneath (immutable, hashable, built in C); a mutable
one gets a generated `__init__` (positional or keyword arguments, defaults), `__eq__`
(unless eq=False) and `__repr__`. Fields are the class's own annotations, in order;
defaults are plain values (immutable ones).
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # the type checker takes the branch below as true
if TYPE_CHECKING:
    from dataclasses import dataclass as record
else:

    def record(cls=None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False):
        """The decorator (with or without arguments); `slots` is accepted and ignored."""
        if cls is None:
            return lambda c: _build(c, frozen, eq)
        return _build(cls, frozen, eq)


def field_names(cls) -> tuple[str, ...]:
    """The record's fields, in declaration order."""
    return cls.__record_fields__


def replace(obj, **changes):
    """A copy of a record with some fields changed."""
    return type(obj)(**{name: changes.get(name, getattr(obj, name))
                        for name in obj.__record_fields__})  # fmt: skip


def _build(cls, frozen: bool, eq: bool):
    """A mutable record (frozen=False) keeps its values in the instance's dict."""
    names = tuple(cls.__annotations__)  # the class's own (inspect costs its import)
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    if frozen:
        return _frozen(cls, names, defaults)
    for name in defaults:
        delattr(cls, name)  # instances hold every value
    # A generated __init__, as dataclasses makes: a loop of setattr costs several times
    # as much, and bulk enqueue builds one record per job.
    params = ", ".join(f"{n}=_d_{n}" if n in defaults else n for n in names)
    # straight into the instance's dict: past a frozen __setattr__, and the fastest way
    body = " d = self.__dict__\n" + "\n".join(f" d[{n!r}] = {n}" for n in names)
    namespace: dict = {f"_d_{n}": v for n, v in defaults.items()}
    exec(f"def __init__(self, {params}):\n{body}", namespace)
    cls.__init__ = namespace["__init__"]
    cls.__record_fields__ = names

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({values})"

    if "__repr__" not in cls.__dict__:
        cls.__repr__ = __repr__
    if eq:

        def __eq__(self, other):
            if type(other) is not type(self):
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        cls.__eq__ = __eq__
        cls.__hash__ = (
            (lambda self: hash(tuple(getattr(self, n) for n in names))) if frozen else None
        )
    return cls


def _frozen(cls, names, defaults):
    """A frozen record is a named tuple underneath: immutable, hashable, built in C and
    read by index (bulk enqueue makes one per job and reads it back by position)."""
    base = namedtuple(cls.__name__, names, defaults=[defaults[n] for n in names if n in defaults])
    body = {k: v for k, v in cls.__dict__.items()
            if k not in names and k not in ("__dict__", "__weakref__")}  # fmt: skip
    built = type(cls.__name__, (base,), {**body, "__slots__": (), "__record_fields__": names})
    built.__qualname__ = cls.__qualname__
    return built
