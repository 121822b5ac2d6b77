"""`@record`: the model's typed records at no import cost.

The records are on the enqueue path, where importing `dataclasses` (which imports
inspect, ast, dis and tokenize) and `typing` doubled the start-up of `queuectl enqueue`
(measured: 40 ms to 80 ms), and where namedtuple's generated code costs half a
millisecond a class. To the type checker `record` is `dataclasses.dataclass`, so
construction and fields are checked as for one. At run time:

- a frozen record is a tuple: immutable, hashable, compared by value, its fields read by
  index in C (`operator.itemgetter`); once it has been built often, its `__new__` is
  generated with the fields as parameters (arguments bind in C: bulk enqueue builds
  one per job);
- a mutable record (`frozen=False`, like `jobs.Job`) keeps its values as attributes,
  with `__eq__` unless eq=False.

Fields are the class's own annotations, in order; defaults are plain (immutable) values.
"""

from __future__ import annotations

from operator import itemgetter

TYPE_CHECKING = False  # the type checker takes the branch below as true
if TYPE_CHECKING:
    from dataclasses import dataclass as record
else:

    def record(cls=None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False):
        """The decorator (with or without arguments); `slots` is accepted and ignored."""
        if cls is None:
            return lambda c: _build(c, frozen, eq)
        return _build(cls, frozen, eq)


_MISSING = object()


def field_names(cls) -> tuple[str, ...]:
    """The record's fields, in declaration order."""
    return cls.__record_fields__


def replace(obj, **changes):
    """A copy of a record with some fields changed."""
    return type(obj)(**{name: changes.get(name, getattr(obj, name))
                        for name in obj.__record_fields__})  # fmt: skip


def _values(cls_name: str, names, defaults, args, kwargs) -> list:
    """The values of every field from positional and keyword arguments and defaults."""
    if len(args) > len(names):
        raise TypeError(f"{cls_name} takes {len(names)} arguments, got {len(args)}")
    values = [*args, *[_MISSING] * (len(names) - len(args))]
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"{cls_name} has no field {key!r}")
        at = names.index(key)
        if values[at] is not _MISSING:
            raise TypeError(f"{cls_name} got {key!r} twice")
        values[at] = value
    for at, value in enumerate(values):
        if value is _MISSING:
            if names[at] not in defaults:
                raise TypeError(f"{cls_name} needs {names[at]!r}")
            values[at] = defaults[names[at]]
    return values


_FAST_AFTER = 64  # constructions of a frozen record before its fast __new__ is made


def _counting_new(name: str, names: tuple[str, ...], defaults: dict):
    """A frozen record's first __new__: it binds arguments in Python (`_values`, a few
    microseconds), and after _FAST_AFTER constructions installs the fast one. Compiling
    that costs a quarter of a millisecond, more than a CLI start builds records; bulk
    enqueue and a pool build thousands."""
    built = 0

    def __new__(cls, *args, **kwargs):
        nonlocal built
        built += 1
        if built == _FAST_AFTER:
            cls.__new__ = staticmethod(_fast_new(names, defaults))
        return tuple.__new__(cls, _values(name, names, defaults, args, kwargs))

    return __new__


def _fast_new(names: tuple[str, ...], defaults: dict):
    """A __new__ with the fields as its parameters (as namedtuple makes): arguments bind
    in C, where a generic one cost bulk enqueue a sixth."""
    params = ", ".join(f"{n}=_d[{n!r}]" if n in defaults else n for n in names)
    source = f"def __new__(_cls, {params}):\n return _new(_cls, ({', '.join(names)},))"
    namespace = {"_d": defaults, "_new": tuple.__new__}
    exec(source, namespace)
    return namespace["__new__"]


def _repr(self) -> str:
    values = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__record_fields__)
    return f"{type(self).__name__}({values})"


def _build(cls, frozen: bool, eq: bool):
    names = tuple(cls.__annotations__)  # the class's own (inspect costs its import)
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    body = {k: v for k, v in cls.__dict__.items()
            if k not in names and k not in ("__dict__", "__weakref__")}  # fmt: skip
    body.setdefault("__repr__", _repr)
    body["__record_fields__"] = names
    name = cls.__name__
    if frozen:
        body.update({n: property(itemgetter(i)) for i, n in enumerate(names)})
        body.update(__new__=_counting_new(name, names, defaults), __slots__=())
        built = type(name, (tuple,), body)
    else:
        known, required = frozenset(names), frozenset(names) - defaults.keys()

        def __init__(self, *args, **kwargs):
            if args or not (known.issuperset(kwargs) and required.issubset(kwargs)):
                kwargs = dict(zip(names, _values(name, names, defaults, args, kwargs)))
            values = self.__dict__  # (set operations and dict updates run in C)
            values.update(defaults)
            values.update(kwargs)

        body["__init__"] = __init__
        if eq:
            body["__eq__"] = lambda self, other: (
                type(other) is type(self)
                and all(getattr(self, n) == getattr(other, n) for n in names)
            )
            body["__hash__"] = None  # mutable: not hashable
        built = type(name, cls.__bases__, body)
    built.__qualname__ = cls.__qualname__
    return built
