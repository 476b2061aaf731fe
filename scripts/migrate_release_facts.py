"""One-off: rewrite old-style ``preprocessing`` of shipped cards in the fields the task's release facts now give.

    python scripts/migrate_release_facts.py [--weights zoo/pretrained_weights] [--check]

Cards exported before the tasks stated their own release facts carried MNIST's pixel
order as a seed (``{divide_by, mean, std, variant, permuted, permutation_seed}``);
``zoo.pretrained.Pretrained.prepare_images`` now reads only what the card carries:
``{divide_by, mean, std, image_size, pixel_order, steps, inputs}``. This rebuilds the
card's DataModule from its ``data`` entry (no data file is read) and writes its
``release_facts()`` into the manifest entry and the card's JSON. The weights, their
sha256 and every other field stay as they are. ``--check`` only says what would change.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import json
import sys
from pathlib import Path

from zoo import transport
from zoo.app.runner import build_data
from zoo.files import write_json_atomic
from zoo.pretrained import MANIFEST_NAME

OLD_FIELDS = {"variant", "permuted", "permutation_seed"}


def new_preprocessing(card: dict) -> dict | None:
    """The card's preprocessing from its task's release facts, or None when it is not old-style."""
    old = card.get("preprocessing") or {}
    if not OLD_FIELDS & set(old):
        return None
    facts = dict(build_data({"data": card["data"]}).release_facts())
    facts.pop("vocab", None)
    for key in ("divide_by", "mean", "std"):  # the arithmetic itself must not change
        if key in old and old[key] != facts.get(key):
            raise SystemExit(f"{card['arch']}.{card['tag']}: {key} {old[key]!r} in the card, {facts.get(key)!r} now")
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=transport.PACKAGE_WEIGHTS)
    parser.add_argument("--check", action="store_true", help="only list the entries that would change")
    args = parser.parse_args(argv)
    path = args.weights / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    changed = []
    for name, card in manifest["models"].items():
        facts = new_preprocessing(card)
        if facts is None:
            continue
        changed.append(name)
        print(f"{name}: preprocessing {sorted(card['preprocessing'])} -> {sorted(facts)}")
        if args.check:
            continue
        card["preprocessing"] = facts
        card_path = args.weights / f"{name}.json"
        if card_path.is_file():
            own = json.loads(card_path.read_text(encoding="utf-8"))
            own["preprocessing"] = facts
            write_json_atomic(card_path, own)
    if changed and not args.check:
        write_json_atomic(path, manifest)
    if not changed:
        print("nothing to migrate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
