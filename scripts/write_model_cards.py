"""Write every release's model card (``<name>.md``) again from its manifest entry, through the code only.

    python scripts/write_model_cards.py [--weights zoo/pretrained_weights] [--check]

A card is ``zoo.app.release.card_text`` of the entry: its front matter (the model-index the
Hub reads) is built by huggingface_hub's ``ModelCardData`` and ``EvalResult``. Run this
when the card's layout changes, instead of editing a card by hand; the weights, the
manifest and the JSON cards are not touched. ``--check`` writes nothing and exits 1 if a
card is not what the code writes (tests/test_hub_transport.py checks the shipped ones).
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import sys
from pathlib import Path

from zoo import transport
from zoo.app.release import card_text
from zoo.files import write_text_atomic
from zoo.pretrained import MANIFEST_NAME, manifest


def stale_cards(weights: Path) -> dict[Path, str]:
    """Each card file whose text is not what the code writes for its entry, with that text."""
    wanted = {weights / f"{name}.md": card_text(name, card) for name, card in manifest(weights / MANIFEST_NAME).items()}
    return {path: text for path, text in wanted.items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=transport.PACKAGE_WEIGHTS)
    parser.add_argument("--check", action="store_true", help="only list the cards that would change")
    args = parser.parse_args(argv)
    stale = stale_cards(args.weights)
    for path, text in stale.items():
        print(f"{path.name}: {'differs from what the code writes' if args.check else 'written'}")
        if not args.check:
            write_text_atomic(path, text)
    if not stale:
        print("every card is what the code writes")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
