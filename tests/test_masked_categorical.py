"""The lean masked distribution gives sb3-contrib's numbers bit for bit, masked and unmasked."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution  # noqa: E402

from agents.config import AgentConfig  # noqa: E402
from agents.masked_categorical import LeanMaskableCategoricalDistribution  # noqa: E402
from tests.helpers import vrp_suite_vec_env  # noqa: E402


def _pair(logits, masks):
    """sb3-contrib's distribution and the lean one over the same logits and masks."""
    dists = []
    for cls in (MaskableCategoricalDistribution, LeanMaskableCategoricalDistribution):
        dist = cls(logits.shape[-1]).proba_distribution(logits.clone())
        if masks is not None:
            dist.apply_masking(masks)
        dists.append(dist)
    return dists


def _same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("masked", [True, False])
def test_every_output_equals_sb3_contribs_bit_for_bit(seed, masked):
    gen = torch.Generator().manual_seed(seed)
    n_rows, n_actions = 37, 15
    logits = torch.randn(n_rows, n_actions, generator=gen) * (1 + 4 * seed)
    masks = None
    if masked:
        masks = torch.rand(n_rows, n_actions, generator=gen) < 0.5
        masks[:, 0] = True  # hold is always allowed
        masks = masks.numpy()
    theirs, lean = _pair(logits, masks)
    assert _same(lean.distribution.logits, theirs.distribution.logits)
    assert _same(lean.distribution.probs, theirs.distribution.probs)
    assert _same(lean.entropy(), theirs.entropy())
    assert _same(lean.mode(), theirs.mode())
    torch.manual_seed(seed)
    drawn_theirs = theirs.sample()
    torch.manual_seed(seed)
    drawn_lean = lean.sample()
    assert _same(drawn_lean, drawn_theirs)
    assert _same(lean.log_prob(drawn_theirs), theirs.log_prob(drawn_theirs))
    if masked:  # masked actions are never drawn and have (numerically) no probability
        assert bool(torch.as_tensor(masks).gather(1, drawn_lean[:, None]).all())


def test_the_unmasked_path_renormalises_as_sb3_contrib_does_before_any_use():
    """Without masks sb3-contrib normalises the logits twice; the lean one must too, whichever
    method is used first (here the distribution's probabilities, read directly)."""
    logits = torch.tensor([[30.0, -2.5, 1e-3, 7.25], [-40.0, 12.0, 12.0, 0.1]])
    theirs, lean = _pair(logits, None)
    assert _same(lean.distribution.probs, theirs.distribution.probs)
    assert _same(lean.distribution.logits, theirs.distribution.logits)


def test_training_with_it_gives_sb3_contribs_parameters_and_loaded_models_get_it(tmp_path):
    """Three updates of MaskablePPO on the vrp market: the same parameters bit for bit with
    either distribution; ``build_model`` and ``load_model`` install the lean one."""
    from agents.ppo import atomic_save, build_model, load_model

    agent = AgentConfig(n_steps=64, batch_size=32, n_epochs=2, net_arch=[16])
    models = []
    for lean in (True, False):
        model = build_model(agent, vrp_suite_vec_env(), 0, None)
        assert type(model.policy.action_dist) is LeanMaskableCategoricalDistribution
        if not lean:
            model.policy.action_dist = MaskableCategoricalDistribution(
                model.policy.action_dist.action_dim)
        model.learn(total_timesteps=64 * 3)
        models.append(model)
    lean_params, their_params = (m.policy.state_dict() for m in models)
    assert lean_params.keys() == their_params.keys()
    assert all(torch.equal(lean_params[k], their_params[k]) for k in lean_params)
    moved = build_model(agent, vrp_suite_vec_env(), 0, None).policy.state_dict()
    assert not all(torch.equal(moved[k], lean_params[k]) for k in moved)  # training did move
    atomic_save(models[0], tmp_path / "m.zip")
    loaded = load_model(tmp_path / "m.zip", "maskable_ppo")
    assert type(loaded.policy.action_dist) is LeanMaskableCategoricalDistribution
