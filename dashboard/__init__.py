"""A read-only Streamlit dashboard over run folders and executor journals.

``python -m dashboard --runs runs/ [--journal PATH]``; pages in ``dashboard/views``, file
readers in ``loaders``, ``journal`` and ``tensorboard``, maths in ``analytics``.
"""

__all__: list[str] = []
