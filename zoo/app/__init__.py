"""The app: the benchmark catalogue, the runner, the boards, releases and the ``zoo`` command.

The only layer that imports ``tasks``: the library (the rest of ``zoo``) knows no task by name,
and ``tasks`` knows only the library (see the import contract in pyproject.toml).
"""
