"""Checks a kassa object against the shape stripe-python's typed resource classes declare.

The declarations are read at run time from the installed SDK's class annotations (stripe-python
generates them from Stripe's OpenAPI spec), so the check follows the SDK rather than a copy of it:

- every field the SDK declares without ``Optional`` must be present (an SDK user reads it
  unguarded and would get ``AttributeError``);
- no field the SDK does not declare may be present;
- nested objects the SDK types (inner ``StripeObject`` classes, expanded resources, ``ListObject``
  pages, lists of either) are checked the same way, recursively;
- a value annotated as a plain ``int``/``str``/``bool`` has that type.

stripe-python writes both "nullable" and "may be absent" as ``Optional``, so a field it declares
``Optional`` may be missing here; tests that need "always present, null when unset" assert those
fields themselves.

Use ``assert_stripe_shape(obj, "PaymentIntent")`` in tests, or ``stripe_shape_problems`` to get the
list of problems.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ForwardRef, Literal, Union

import stripe
from stripe import ListObject, StripeObject
from stripe._object_classes import OBJECT_CLASSES, get_object_class
from stripe._stripe_object import UntypedStripeObject

__all__ = ["assert_stripe_list", "assert_stripe_shape", "declared_fields", "resource_class",
           "stripe_shape_problems"]

_NONE = type(None)

# The few fields kassa adds to Stripe's objects, each documented in the README; any other
# undeclared field is a problem.
KASSA_EXTENSIONS: dict[str, frozenset[str]] = {
    # per endpoint: deliveries also signed under Stripe-Signature (README, Webhooks)
    "WebhookEndpoint": frozenset({"stripe_signature"}),
}


@dataclass(frozen=True)
class Field:
    """One declared field: its annotation and whether the SDK may see it absent or null."""

    name: str
    annotation: Any
    optional: bool


def resource_class(resource: type[StripeObject] | str) -> type[StripeObject]:
    """The stripe-python class for a class, a class name (``"PaymentIntent"``) or an object tag
    (``"payment_intent"``, as in an object's ``object`` field)."""
    if isinstance(resource, str) and resource in _by_object_name():
        return _by_object_name()[resource]
    if isinstance(resource, str):
        cls = getattr(stripe, resource, None)
        if not (inspect.isclass(cls) and issubclass(cls, StripeObject)):
            raise LookupError(f"stripe-python has no resource class named {resource!r}")
        return cls
    return resource


@functools.cache
def _by_object_name() -> dict[str, type[StripeObject]]:
    """``{object tag: class}``: the table stripe-python itself uses to type API responses."""
    classes: dict[str, type[StripeObject]] = {}
    for name in OBJECT_CLASSES:
        cls = get_object_class("V1", name)
        if cls is not StripeObject and name not in ("list", "search_result"):
            classes[name] = cls
    return classes


@functools.cache
def declared_fields(cls: type[StripeObject]) -> dict[str, Field]:
    """The response fields ``cls`` declares: its annotations and its bases' (not StripeObject's)."""
    fields: dict[str, Field] = {}
    for klass in reversed(cls.__mro__):
        if not (inspect.isclass(klass) and issubclass(klass, StripeObject)):
            continue
        if klass in (StripeObject, UntypedStripeObject):
            continue
        for name, annotation in klass.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or typing.get_origin(annotation) is typing.ClassVar:
                continue
            if name == "OBJECT_NAME":
                continue
            fields[name] = Field(name, annotation, _NONE in _union_args(annotation))
    return fields


def stripe_shape_problems(
    obj: Mapping[str, Any], resource: type[StripeObject] | str | None = None, *, path: str = ""
) -> list[str]:
    """Every way ``obj`` departs from what the SDK declares for ``resource`` (empty when it fits).

    Without ``resource`` the class is the one whose ``OBJECT_NAME`` is ``obj["object"]``."""
    cls = resource_class(resource if resource is not None else str(obj.get("object")))
    problems: list[str] = []
    _check_object(obj, cls, path or _object_name(cls), problems)
    return problems


def assert_stripe_shape(
    obj: Mapping[str, Any], resource: type[StripeObject] | str | None = None
) -> None:
    """Fails with every problem listed when ``obj`` is not the shape the SDK declares."""
    problems = stripe_shape_problems(obj, resource)
    assert not problems, "not the shape stripe-python declares:\n  " + "\n  ".join(problems)


def assert_stripe_list(page: Mapping[str, Any], resource: type[StripeObject] | str) -> None:
    """Fails unless ``page`` is a stripe list object whose every item has ``resource``'s shape."""
    cls = resource_class(resource)
    problems: list[str] = []
    if page.get("object") != "list":
        problems.append(f"list.object: {page.get('object')!r}, not 'list'")
    _check_page(page, ListObject[cls], "list", problems)  # type: ignore[valid-type]
    assert not problems, "not the shape stripe-python declares:\n  " + "\n  ".join(problems)


# --- internals ---------------------------------------------------------------------------


def _object_name(cls: type[StripeObject]) -> str:
    return getattr(cls, "OBJECT_NAME", None) or cls.__qualname__


def _check_object(obj: Any, cls: type[StripeObject], path: str, problems: list[str]) -> None:
    if not isinstance(obj, Mapping):
        problems.append(f"{path}: expected an object ({cls.__qualname__}), "
                        f"got {type(obj).__name__}")
        return
    fields = declared_fields(cls)
    for name, field in fields.items():
        if name not in obj:
            if not field.optional:
                problems.append(f"{path}.{name}: missing (the SDK declares it always present)")
            continue
        _check_value(obj[name], field.annotation, cls, f"{path}.{name}", problems)
    for name in obj:
        if name not in fields and name not in KASSA_EXTENSIONS.get(cls.__name__, ()):
            problems.append(f"{path}.{name}: not a field stripe-python declares on "
                            f"{cls.__qualname__}")
    if cls is stripe.Event and isinstance(obj.get("data"), Mapping):
        # Event.data.object is untyped in the SDK; its own `object` tag names its class
        payload = obj["data"].get("object")
        if isinstance(payload, Mapping) and payload.get("object") in _by_object_name():
            _check_object(payload, _by_object_name()[payload["object"]],
                          f"{path}.data.object", problems)
        elif payload is not None:
            problems.append(f"{path}.data.object: no stripe-python class for {payload!r:.80}")


def _check_value(
    value: Any, annotation: Any, owner: type[StripeObject], path: str, problems: list[str]
) -> None:
    args = _union_args(annotation)
    if value is None:
        if _NONE not in args:
            problems.append(f"{path}: null, but the SDK declares it non-nullable")
        return
    candidates = [_resolve(a, owner) for a in args if a is not _NONE]
    if any(c is Any or isinstance(c, typing.TypeVar) for c in candidates):
        return
    if isinstance(value, Mapping):
        _check_mapping(value, candidates, path, problems)
    elif isinstance(value, list):
        items = [typing.get_args(c)[0] for c in candidates if typing.get_origin(c) is list]
        if not items:
            problems.append(f"{path}: a list, but the SDK declares {_describe(candidates)}")
            return
        for i, item in enumerate(value):
            _check_value(item, Union[tuple(items)], owner, f"{path}[{i}]", problems)  # noqa: UP007
    else:
        _check_scalar(value, candidates, path, problems)


def _check_mapping(
    value: Mapping[str, Any], candidates: list[Any], path: str, problems: list[str]
) -> None:
    if any(_is_untyped(c) for c in candidates):
        return  # metadata and other free-form hashes
    pages = [c for c in candidates if typing.get_origin(c) is ListObject]
    if pages and value.get("object") == "list":
        _check_page(value, pages[0], path, problems)
        return
    classes = [c for c in candidates if inspect.isclass(c) and issubclass(c, StripeObject)]
    if not classes:
        problems.append(f"{path}: an object, but the SDK declares {_describe(candidates)}")
        return
    if len(classes) > 1:
        tagged = [c for c in classes if getattr(c, "OBJECT_NAME", None) == value.get("object")]
        if len(tagged) != 1:
            problems.append(f"{path}: object {value.get('object')!r} is none of "
                            f"{_describe(classes)}")
            return
        classes = tagged
    _check_object(value, classes[0], path, problems)


def _check_page(value: Mapping[str, Any], page: Any, path: str, problems: list[str]) -> None:
    (item,) = typing.get_args(page) or (Any,)
    item = _resolve(item, ListObject)
    for name in ("data", "has_more", "url"):
        if name not in value:
            problems.append(f"{path}.{name}: missing from a list object")
    extra = set(value) - {"object", "data", "has_more", "url"}
    for name in sorted(extra):
        problems.append(f"{path}.{name}: not a field of a stripe list object")
    if item is Any or not isinstance(value.get("data"), list):
        return
    for i, element in enumerate(value["data"]):
        _check_object(element, item, f"{path}.data[{i}]", problems)


def _check_scalar(value: Any, candidates: list[Any], path: str, problems: list[str]) -> None:
    for candidate in candidates:
        if typing.get_origin(candidate) is Literal:
            if value in typing.get_args(candidate):
                return
            continue
        if candidate is bool and isinstance(value, bool):
            return
        if candidate is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if candidate is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if candidate is str and isinstance(value, str):
            return
    problems.append(f"{path}: {value!r} is not {_describe(candidates)}")


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_untyped(candidate: Any) -> bool:
    origin = typing.get_origin(candidate) or candidate
    if inspect.isclass(origin) and issubclass(origin, UntypedStripeObject):
        return True
    return origin in (dict, Mapping)


def _describe(candidates: list[Any]) -> str:
    def name(c: Any) -> str:
        if typing.get_origin(c) is not None:  # list[str], Literal['a', 'b']
            return repr(c).replace("typing.", "").replace("stripe._", "")
        return getattr(c, "__qualname__", None) or repr(c)

    return " | ".join(name(c) for c in candidates)


def _resolve(annotation: Any, owner: type) -> Any:
    """Turns the SDK's ``ForwardRef("Charge")`` (imported under TYPE_CHECKING) into the class."""
    if isinstance(annotation, str):
        annotation = ForwardRef(annotation)
    if isinstance(annotation, ForwardRef):
        return _forward_target(owner.__module__, annotation.__forward_arg__)
    origin = typing.get_origin(annotation)
    if origin is ListObject:
        return ListObject[tuple(_resolve(a, owner) for a in typing.get_args(annotation))]  # type: ignore[misc]
    if origin is list:
        (item,) = typing.get_args(annotation)
        return list[_resolve(item, owner)]  # type: ignore[misc]
    return annotation


@functools.cache
def _forward_target(module_name: str, name: str) -> Any:
    for module, attr in _type_checking_imports(module_name).get(name, ()):
        target = getattr(importlib.import_module(module), attr, None)
        if target is not None:
            return target
    target = getattr(sys.modules[module_name], name, None) or getattr(stripe, name, None)
    if target is None:
        raise LookupError(f"cannot resolve {name!r} used in {module_name}")
    return target


@functools.cache
def _type_checking_imports(module_name: str) -> dict[str, list[tuple[str, str]]]:
    """``{local name: [(module, attribute)]}`` from a stripe module's ``from x import y as z``."""
    source = inspect.getsource(sys.modules[module_name])
    found: dict[str, list[tuple[str, str]]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found.setdefault(alias.asname or alias.name, []).append((node.module, alias.name))
    return found
