"""The leaderboards as a static web site: ``zoo leaderboard site --out DIR``, and ``leaderboards/site/`` from
``zoo leaderboard build``.

HTML from jinja2 templates (``templates/``), one stylesheet and one small script of our own
(``static/``), the boards' PNGs, and charts drawn as inline SVG; no framework, no request to
another host, and every page works from ``python -m http.server -d DIR`` or a plain file://
open. ``render`` writes a site from built boards (``zoo.app.boards.build`` calls it),
``source`` from a records folder.
"""

from zoo.app.site.render import write_site
from zoo.app.site.source import build_site

__all__ = ["build_site", "write_site"]
