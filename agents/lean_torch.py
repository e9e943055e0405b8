"""Less work around torch's and SB3's numbers, the numbers unchanged.

* :func:`optimizers_without_dynamo` and :func:`step_without_dynamo` spare a process torch's
  compiler (``torch._dynamo``: 1.2-2 s of imports), which torch's optimizers import to mark
  regions that nothing here compiles: the first when a model is loaded to act (evaluate,
  trade), the second at a training run's first update;
* :func:`lean_model` gives a model both that and, for MaskablePPO, the lean masked
  distribution of ``agents.masked_categorical``.

Tests: ``tests/test_imports.py`` (the optimizer methods, in a new process),
``tests/test_optimizer_step.py`` (training: same parameters bit for bit, compiler not loaded)
and ``tests/test_masked_categorical.py``.
"""

from __future__ import annotations

import functools
import sys

import torch

from agents.masked_categorical import use_lean_masked_distribution

__all__ = ["lean_model", "optimizers_without_dynamo", "step_without_dynamo"]


def lean_model(model):
    """The same model with less work around its numbers: MaskablePPO's masked distribution
    with sb3-contrib's numbers (``agents.masked_categorical``; other algorithms keep theirs) and
    an optimizer step that does not import torch's compiler (:func:`step_without_dynamo`)."""
    use_lean_masked_distribution(model)
    step_without_dynamo(model.policy.optimizer)
    return model


def step_without_dynamo(optimizer) -> None:
    """Spare training torch's compiler: 1.2-2 s of imports at the first update.

    torch decorates ``Adam.step`` (and the other optimizers' ``step``) with
    ``_use_grad_for_differentiable``, whose wrapper imports ``torch._dynamo`` on every call to
    mark two graph breaks; outside a compiled region a graph break does nothing. This gives
    ``optimizer`` (this instance only: the policy's, which nothing compiles) a ``step`` that
    does the rest of that wrapper, the grad mode set from ``defaults["differentiable"]`` around
    the original ``step`` and then restored, inside torch's own profiler and hook wrapper
    (``Optimizer.profile_hook_step``): the same arithmetic on the same tensors. Where torch's
    compiler is already loaded, or torch's ``step`` is not laid out as expected, it leaves the
    optimizer as it is."""
    if optimizer is None or "torch._dynamo" in sys.modules:
        return
    hooked = type(optimizer).step
    use_grad = getattr(hooked, "__wrapped__", None)
    original = getattr(use_grad, "__wrapped__", None)
    code = getattr(use_grad, "__code__", None)  # the wrapper's own (wraps copies the name)
    if (original is None or code is None or code.co_name != "_use_grad"
            or use_grad.__globals__.get("__name__") != "torch.optim.optimizer"):
        return

    @functools.wraps(original)
    def _use_grad(self, *args, **kwargs):
        prev_grad = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return original(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(prev_grad)

    step = torch.optim.Optimizer.profile_hook_step(_use_grad)
    optimizer.step = step.__get__(optimizer)


# The torch.optim.Optimizer methods torch wraps in `torch._disable_dynamo`, which SB3 calls.
_DYNAMO_DISABLED_OPTIMIZER_METHODS = ("add_param_group", "zero_grad", "state_dict",
                                      "load_state_dict")


def optimizers_without_dynamo() -> None:
    """Spare a process that loads a model to act with it (evaluate, trade) torch's compiler:
    1.5-2 s of imports. (``Optimizer.step`` imports it at every call: training's optimizer gets
    :func:`step_without_dynamo`.)

    torch wraps some optimizer methods in ``torch._disable_dynamo``, whose first call imports
    ``torch._dynamo`` to run the method outside any compiled region and caches the result on
    the method as ``__dynamo_disable``. Nothing here compiles, so running the method itself is
    the same call: that is what this caches, in torch's own slot, before the first call. Where
    torch's compiler is already loaded (someone compiles) or torch lays its methods out
    otherwise, it leaves them alone and torch behaves as it always does."""
    if "torch._dynamo" in sys.modules:
        return
    for name in _DYNAMO_DISABLED_OPTIMIZER_METHODS:
        method = torch.optim.Optimizer.__dict__.get(name)
        original = getattr(method, "__wrapped__", None)
        if original is not None and not hasattr(original, "__dynamo_disable"):
            setattr(original, "__dynamo_disable", original)
