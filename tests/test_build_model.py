"""``agents.ppo.build_model``: what a fresh learner leaves behind."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from agents.config import AgentConfig  # noqa: E402
from tests.helpers import vrp_suite_vec_env  # noqa: E402


def test_learning_without_tensorboard_leaves_no_folder_in_the_temp_dir(tmp_path, monkeypatch):
    """SB3 makes an empty ``SB3-<date>`` folder in the temp dir for each ``learn`` of a model
    without a TensorBoard folder (643 of them after a few suite runs); ``build_model`` keeps
    that learner's figures in memory instead, and they are still recorded."""
    import tempfile

    from agents.ppo import build_model

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    model = build_model(AgentConfig(n_steps=32, batch_size=32, n_epochs=1, net_arch=[8]),
                        vrp_suite_vec_env(), 0, None)
    model.learn(total_timesteps=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert "train/explained_variance" in model.logger.name_to_value


def test_a_model_saved_to_bytes_and_loaded_acts_as_the_original():
    """The learnability suite's workers send their final model to the parent as the SB3 zip's
    bytes; loaded there it takes the same actions on the same observations (masked or not)."""
    import io

    import numpy as np

    from agents.ppo import build_model, load_model

    vec = vrp_suite_vec_env()
    model = build_model(AgentConfig(n_steps=32, batch_size=32, n_epochs=1, net_arch=[8]), vec,
                        0, None)
    model.learn(total_timesteps=64)
    saved = io.BytesIO()
    model.save(saved)
    loaded = load_model(io.BytesIO(saved.getvalue()), "maskable_ppo")
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((64, vec.observation_space.shape[0])).astype(np.float32)
    masks = rng.random((64, vec.action_space.n)) < 0.6
    masks[:, 0] = True
    for mask in (None, masks):
        a, _ = model.predict(obs, deterministic=True, action_masks=mask)
        b, _ = loaded.predict(obs, deterministic=True, action_masks=mask)
        assert np.array_equal(a, b)
    assert len(set(a.tolist())) > 1  # the check compares choices, not one constant action
