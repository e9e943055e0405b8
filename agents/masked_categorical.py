"""sb3-contrib's masked categorical distribution with the same numbers and less work per call.

``MaskableActorCriticPolicy`` builds one distribution per forward pass: on every rollout step
and on every minibatch of the update. sb3-contrib's ``MaskableCategorical`` runs torch's
``Categorical.__init__`` three times per distribution (once for the logits, once more when its
constructor clears the masks, once when the policy applies them), each time normalising the
logits with a ``logsumexp`` and checking them against their constraint, and checks every action
again in ``log_prob``. With the small networks of this project that bookkeeping is a sizeable
share of training time.

``LeanMaskableCategoricalDistribution`` does the same arithmetic in the same order, so its
logits, probabilities, samples, log-probabilities and entropies are bit for bit sb3-contrib's
(tested), and skips the rest:

* the constructor's unmasked re-normalisation is deferred, and dropped when masks are applied
  next (the masked logits are computed from the first normalisation in sb3-contrib too);
* torch's argument checks are off (``validate_args=False``): they only ever raise on values the
  policy itself produced (finite logits, actions drawn from the same distribution).

``use_lean_masked_distribution(model)`` installs it on a MaskablePPO model's policy. It is not
saved with the model: a model loaded elsewhere gets sb3-contrib's own, which gives the same
numbers.
"""

from __future__ import annotations

from sb3_contrib.common.maskable.distributions import (  # optional heavy: callers load SB3
    MaskableCategorical,
    MaskableCategoricalDistribution,
)
from torch.distributions import Categorical  # optional heavy: as above

__all__ = ["LeanMaskableCategoricalDistribution", "use_lean_masked_distribution"]


class _LeanMaskableCategorical(MaskableCategorical):
    """``MaskableCategorical`` without argument checks and without the constructor's second
    normalisation (``masks_pending``: the owner applies masks, or none, before any use)."""

    def __init__(self, logits):  # noqa: D107 - the class docstring says it
        self.masks = None
        Categorical.__init__(self, logits=logits, validate_args=False)
        self._original_logits = self.logits


class LeanMaskableCategoricalDistribution(MaskableCategoricalDistribution):
    """sb3-contrib's ``MaskableCategoricalDistribution`` with bit-identical numbers (module
    docstring). Masks, or their absence, are applied before the first use of the distribution:
    if the policy applies none, the first use clears them as sb3-contrib's constructor does."""

    def __init__(self, action_dim: int):
        super().__init__(action_dim)
        self._masks_pending = False

    @property
    def distribution(self):
        if self._masks_pending:
            self._masks_pending = False
            self._distribution.apply_masking(None)
        return self._distribution

    @distribution.setter
    def distribution(self, value) -> None:
        self._distribution = value
        self._masks_pending = False

    def proba_distribution(self, action_logits):
        self._distribution = _LeanMaskableCategorical(action_logits.view(-1, self.action_dim))
        self._masks_pending = True
        return self

    def apply_masking(self, masks) -> None:
        self._masks_pending = False
        self._distribution.apply_masking(masks)


def use_lean_masked_distribution(model) -> None:
    """Give a MaskablePPO ``model``'s policy the lean distribution (same numbers, less work);
    a model whose policy has another distribution is left as it is."""
    policy = model.policy
    dist = getattr(policy, "action_dist", None)
    if type(dist) is MaskableCategoricalDistribution:
        policy.action_dist = LeanMaskableCategoricalDistribution(dist.action_dim)
