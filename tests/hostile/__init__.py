"""Hostile trials (TESTING.md). A package, so that its conftest is ``hostile.conftest`` and never the ``conftest``
module that tests elsewhere import their helpers from."""
