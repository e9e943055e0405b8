"""The CLI layer: argument parsing and YAML resolution for the entry points.

``config.py`` (the experiment config) imports every stage's config section, so no stage package
(``data``, ``forecasters``, ``options``, ``envs``, ``agents``, ``execution``, ``dashboard``)
imports it back: stages take typed sections or an already-loaded ``ExperimentConfig``. YAML is
resolved (``config.load_config``) only here and in the scripts ``train.py``, ``evaluate.py`` and
``trade.py``:

- ``cli.forecasters``: ``python -m forecasters`` (``forecasters/__main__.py`` calls it);
- ``cli.tune``, ``cli.ablate``: ``python -m agents.tune`` / ``python -m agents.ablate`` (the
  ``__main__`` blocks of those modules call them);
- ``cli.learnability``: the learnability suite's config (``bench/learnability.py``);
- ``cli.gym``: the ``gym.make("envs:SpyOptions-v1", config=PATH_OR_DICT, ...)`` entry point.

A stage module reaches this layer only from its ``if __name__ == "__main__":`` block.
"""
