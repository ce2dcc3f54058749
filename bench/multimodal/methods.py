"""What a training method on the sequence-to-sequence CoCa is: a named, registered object that says what it trains.

The loop (`bench.multimodal.loop`) and the attacks (`bench.multimodal.robustness`) only ever talk to a method
through `Seq2SeqMethod`:

- `attach(backbone)`: once, before training or evaluating; freezes what stays frozen, adds the method's own modules
  (prompts, adapters, low-rank factors) and returns the parameters the optimizer trains;
- `active()`: a context manager around every forward pass (training, decoding, candidate scoring, attacks); it puts
  the method's per-pass state in place (deep prompts) and is a no-op for methods whose modules are always wired in;
- `trainable_parameter_count`: the number of trained scalars, for the leaderboards' parameter column;
- `config`: the method's name and hyper-parameters as plain data, for records.

The implementations live with the strategies (`strategies/seq2seq/`, registered on import into `SEQ2SEQ_METHODS`);
bench/ never imports a strategy at module level, so `build_method` imports the built-ins lazily, as the runner
imports `strategies` (bench/run/runner.py).
"""
from __future__ import annotations

import importlib
import inspect
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Protocol, TypeVar

from torch import nn

from bench.core.registry import Registry

__all__ = ["SEQ2SEQ_METHODS", "Seq2SeqMethod", "Seq2SeqMethodBase", "build_method", "freeze", "method_default_lr",
           "method_names", "method_parameters", "register_seq2seq_method"]


class Seq2SeqMethod(Protocol):
    """The contract every encoder-decoder training method meets (see the module docstring)."""

    name: str

    @property
    def config(self) -> dict[str, Any]: ...

    def attach(self, backbone: nn.Module) -> list[nn.Parameter]: ...

    def is_attached_to(self, backbone: nn.Module) -> bool: ...

    def trainable_parameters(self) -> list[nn.Parameter]: ...

    def active(self) -> AbstractContextManager: ...

    @property
    def trainable_parameter_count(self) -> int: ...


class Seq2SeqMethodBase(nn.Module):
    """Shared plumbing: one attach per method object, the trained parameters kept, counted without duplicates.

    Subclasses implement `_attach(backbone) -> list[Parameter]` (and `active()` if they swap state in per pass);
    their constructor arguments are their hyper-parameters, recorded by `config`. A method object belongs to one
    backbone: the backbone is built fresh per run and the method's modules are wired into it."""

    name: str = "?"  # set by register_seq2seq_method
    # The method's own default AdamW rate (its config class's `lr` default, the centre of the tuning grid,
    # bench/run/tune_seq2seq.py): methods that train a few new parameters on a frozen model need a far higher rate
    # than fine-tuning.
    default_lr: float = 1e-3

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self._params = dict(params)
        self._trainable: list[nn.Parameter] | None = None
        self._backbone_id: int | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {"method": self.name, **self._params}

    def attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        if self._trainable is not None:
            raise RuntimeError(f"seq2seq method {self.name!r} is already attached; build a new one per backbone")
        params = _unique(self._attach(backbone))
        if not params:
            raise ValueError(f"seq2seq method {self.name!r} has nothing to train on this backbone")
        device = next(backbone.parameters()).device
        self.to(device)  # the method's own modules (prompts, adapters) follow the backbone
        for p in params:
            p.requires_grad_(True)
        self._trainable, self._backbone_id = params, id(backbone)
        return list(params)

    def _attach(self, backbone: nn.Module) -> list[nn.Parameter]:
        raise NotImplementedError

    def is_attached_to(self, backbone: nn.Module) -> bool:
        return self._backbone_id == id(backbone)

    def trainable_parameters(self) -> list[nn.Parameter]:
        if self._trainable is None:
            raise RuntimeError(f"seq2seq method {self.name!r} is not attached: call attach(backbone) first")
        return list(self._trainable)

    def active(self) -> AbstractContextManager:
        return nullcontext()

    @property
    def trainable_parameter_count(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())


def _unique(params: list[nn.Parameter]) -> list[nn.Parameter]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def freeze(module: nn.Module) -> None:
    """Every parameter of `module` frozen (the methods that train only their own parts start here)."""
    module.requires_grad_(False)


M = TypeVar("M", bound=Callable[..., Seq2SeqMethod])
SEQ2SEQ_METHODS: Registry[Callable[..., Seq2SeqMethod]] = Registry("seq2seq method")


def register_seq2seq_method(name: str) -> Callable[[M], M]:
    """Class decorator: register a method under `name` (and set its `name`)."""

    def add(cls: M) -> M:
        cls.name = name  # type: ignore[attr-defined]
        return SEQ2SEQ_METHODS.add(name, cls)

    return add


def _load_builtin_methods() -> None:
    importlib.import_module("strategies.seq2seq")  # registers the built-in methods (lazily: see module docstring)


def method_names() -> list[str]:
    """The registered method names (built-ins included)."""
    _load_builtin_methods()
    return SEQ2SEQ_METHODS.names()


def method_parameters(name: str) -> dict[str, Any]:
    """A method's hyper-parameters and their defaults."""
    _load_builtin_methods()
    signature = inspect.signature(SEQ2SEQ_METHODS.get(name))
    return {k: p.default for k, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY or
            p.kind is p.POSITIONAL_OR_KEYWORD}


def method_default_lr(name: str) -> float:
    """A method's own default learning rate (`default_lr`; 1e-3 for a method that states none)."""
    _load_builtin_methods()
    return float(getattr(SEQ2SEQ_METHODS.get(name), "default_lr", 1e-3))


def build_method(name: str, **params: Any) -> Seq2SeqMethod:
    """A new, unattached method `name` with `params`; an unknown name or parameter is a one-line error naming the
    valid ones."""
    valid = method_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"seq2seq method {name!r}: unknown parameter(s) {unknown}; valid: "
                         f"{', '.join(sorted(valid)) or 'none'}")
    return SEQ2SEQ_METHODS.get(name)(**params)
