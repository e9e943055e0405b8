"""The policy optimizer's step without torch's compiler: same parameters, no ``torch._dynamo``."""

from __future__ import annotations

import pytest

from tests.helpers import run

pytest.importorskip("torch")

# In a new interpreter, where nothing has loaded torch's compiler yet: a model from
# build_model trains three updates on the vrp market; then the same model with torch's own
# Adam.step (the instance's step removed) does the same. Prints, one per line: whether the
# lean step was installed, whether torch._dynamo was loaded after the lean training, whether
# grad mode came back on, whether the parameters are the same bit for bit, whether training
# moved them, whether torch._dynamo was loaded after torch's step.
_CODE = """
import sys, torch
from tests.helpers import vrp_suite_vec_env
from agents.config import AgentConfig
from agents.ppo import build_model

agent = AgentConfig(n_steps=64, batch_size=32, n_epochs=2, net_arch=[16])
lean = build_model(agent, vrp_suite_vec_env(), 0, None)
start = {k: v.clone() for k, v in lean.policy.state_dict().items()}
print('step' in vars(lean.policy.optimizer))
lean.learn(total_timesteps=64 * 3)
print('torch._dynamo' in sys.modules)
print(torch.is_grad_enabled())
stock = build_model(agent, vrp_suite_vec_env(), 0, None)
del stock.policy.optimizer.step
stock.learn(total_timesteps=64 * 3)
a, b = lean.policy.state_dict(), stock.policy.state_dict()
print(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a))
print(not all(torch.equal(a[k], start[k]) for k in a))
print('torch._dynamo' in sys.modules)
"""


def test_training_skips_torch_compiler_with_the_same_parameters():
    out = run("-c", _CODE)
    assert out.returncode == 0, out.stderr[-3000:]
    installed, lean_dynamo, grad_on, same, moved, stock_dynamo = out.stdout.split()[-6:]
    assert installed == "True"
    assert lean_dynamo == "False", "the lean step imported torch._dynamo"
    assert grad_on == "True"
    assert same == "True", "the lean step changed the trained parameters"
    assert moved == "True"
    assert stock_dynamo == "True"  # torch's own step does import it: the check above can fail


def test_a_loaded_model_gets_the_lean_step_and_a_compiler_already_loaded_leaves_it(tmp_path):
    code = f"""
import sys
from tests.helpers import vrp_suite_vec_env
from agents.config import AgentConfig
from agents.ppo import atomic_save, build_model, load_model

agent = AgentConfig(n_steps=64, batch_size=32, n_epochs=2, net_arch=[16])
model = build_model(agent, vrp_suite_vec_env(), 0, None)
atomic_save(model, {str(tmp_path / "m.zip")!r})
loaded = load_model({str(tmp_path / "m.zip")!r}, "maskable_ppo", env=vrp_suite_vec_env())
print('step' in vars(loaded.policy.optimizer))
import torch._dynamo
again = build_model(agent, vrp_suite_vec_env(), 0, None)
print('step' in vars(again.policy.optimizer))
"""
    out = run("-c", code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2:] == ["True", "False"]
