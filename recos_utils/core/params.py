"""Validating a chapter's parameters before any work (every chapter).

Each chapter's ``parameters`` cell holds literals only; the next cell calls::

    P = validate(globals(), EPOCHS=Int(min=1), DATASET=Choice("mnist", "fashion-mnist"))

which checks the common parameters (``QUICK``, ``DEVICE``, ``SEED``, ``DATA_DIR``,
``RESULTS_DIR``) and the chapter's own, rejects unknown upper-case names (a mistyped
``papermill -p`` option), and returns a read-only namespace. Every problem is one
:class:`ParameterError` that names the parameter, the value and what is allowed.
``DEVICE='cuda'`` without a GPU is refused here too, before any data is loaded.
"""
from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

__all__ = ["ParameterError", "Bool", "Int", "Float", "Choice", "OptionalPath", "Path",
           "COMMON", "validate", "Params"]


class ParameterError(ValueError):
    """A chapter parameter has a wrong type, is out of range or is unknown."""


class _Spec:
    allowed = "any value"

    def check(self, name: str, value: Any) -> Any:
        return value

    def fail(self, name: str, value: Any):
        raise ParameterError(f"parameter {name}={value!r} is not allowed; allowed: {self.allowed}")


class Bool(_Spec):
    allowed = "True or False"

    def check(self, name, value):
        if not isinstance(value, bool):
            self.fail(name, value)
        return value


class Int(_Spec):
    def __init__(self, min: int | None = None, max: int | None = None):
        self.min, self.max = min, max
        lo = "" if min is None else f" >= {min}"
        hi = "" if max is None else f" <= {max}"
        self.allowed = f"an integer{lo}{' and' if lo and hi else ''}{hi}"

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            self.fail(name, value)
        return value


class Float(_Spec):
    def __init__(self, min: float | None = None, max: float | None = None):
        self.min, self.max = min, max
        lo = "" if min is None else f" >= {min}"
        hi = "" if max is None else f" <= {max}"
        self.allowed = f"a number{lo}{' and' if lo and hi else ''}{hi}"

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(name, value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            self.fail(name, value)
        return float(value)


class Choice(_Spec):
    def __init__(self, *values):
        self.values = values
        self.allowed = "one of " + ", ".join(repr(v) for v in values)

    def check(self, name, value):
        if value not in self.values:
            self.fail(name, value)
        return value


class Path(_Spec):
    allowed = "a folder path (a non-empty string)"

    def check(self, name, value):
        if not isinstance(value, str) or not value.strip():
            self.fail(name, value)
        return value


class OptionalPath(Path):
    allowed = "None (the default folder) or a folder path (a non-empty string)"

    def check(self, name, value):
        return None if value is None else super().check(name, value)


class _Device(Choice):
    def __init__(self):
        super().__init__("auto", "cpu", "cuda")

    def check(self, name, value):
        value = super().check(name, value)
        from recos_utils.core.device import DeviceError, resolve_device

        try:
            resolve_device(value)
        except DeviceError as e:
            raise ParameterError(f"parameter {name}={value!r}: {e}") from None
        return value


#: Parameters every chapter has.
COMMON = {
    "QUICK": Bool(),
    "DEVICE": _Device(),
    "SEED": Int(min=0, max=2**31 - 1),
    "DATA_DIR": OptionalPath(),
    "RESULTS_DIR": OptionalPath(),
}

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_LITERALS = (bool, int, float, str, type(None), list, tuple, dict)  # not modules (F, np, ...)


class Params:
    """Read-only validated parameters: ``P.QUICK``, ``P.DEVICE``, ...; ``P.device`` is a torch device."""

    def __init__(self, values: dict[str, Any]):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("parameters are read-only; change them in the parameters cell")

    @property
    def device(self):
        from recos_utils.core.device import resolve_device

        return resolve_device(self._values["DEVICE"])

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self):
        return "Params(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


def validate(namespace: dict[str, Any], **specs: _Spec) -> Params:
    """Validate the upper-case literal names of ``namespace`` (a notebook's ``globals()``).

    ``specs`` adds the chapter's own parameters to :data:`COMMON`. Missing, unknown,
    mistyped and out-of-range parameters each raise one :class:`ParameterError`.

    Then the chapter's data files are checked (issue 27), whether or not its models are
    already in the store: the datasets named by ``DATASET`` or ``*_DATASET`` parameters
    (else MNIST), each through :func:`recos_utils.core.data.dataset_id`, which raises one
    ``DataError`` naming a missing, truncated or corrupted file and the fix.
    """
    spec = {**COMMON, **specs}
    given = {k: v for k, v in namespace.items()
             if _NAME.match(k) and isinstance(v, _LITERALS)}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ParameterError(f"unknown parameter {unknown[0]}={given[unknown[0]]!r}; this "
                             f"chapter's parameters are: {', '.join(spec)}")
    missing = [k for k in spec if k not in given]
    if missing:
        raise ParameterError(f"parameter {missing[0]} is missing; the parameters cell must "
                             f"define {', '.join(spec)}")
    params = Params({k: s.check(k, given[k]) for k, s in spec.items()})
    from recos_utils.core.data import dataset_id

    names = [v for k, v in params.as_dict().items()
             if (k == "DATASET" or k.endswith("_DATASET")) and isinstance(v, str)]
    for name in names or ["mnist"]:
        dataset_id(name, params.DATA_DIR)
    return params
