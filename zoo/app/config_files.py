"""Reading YAML configs that come from elsewhere: plain data only, of a bounded size once its aliases are expanded.

``yaml.safe_load`` already refuses Python object tags (``!!python/object/apply:os.system``).
It builds an alias as a shared reference, so a "billion laughs" file (nine anchors, each a
list of ten aliases of the one before) parses in milliseconds into a structure of 10^9
strings. That is harmless only until something walks it, and something always does: the
message of a type check (``repr``), ``str(name)``, jsonargparse's own checks, the JSON of a
record or a checkpoint's hyperparameters. So the parsed value is walked first, each value
counted as often as the aliases repeat it, and refused at ``MAX_VALUES``: the walk costs at
most that many steps, whatever the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ZooError

MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings; a megabyte is a thousand pages
MAX_VALUES = 100_000  # values once aliases are expanded; the largest config a run writes has a few hundred


def expanded_values_over(data: Any, limit: int = MAX_VALUES) -> bool:
    """Whether ``data`` holds more than ``limit`` values counted as a JSON dump would write them (aliases expanded)."""
    count, todo = 0, [data]
    while todo:
        item = todo.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            todo.extend(item)
    return False


def load_yaml(text: str, what: str) -> Any:
    """``text`` parsed as plain YAML data; a Python tag, bad syntax or an expansion past ``MAX_VALUES`` is one error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ZooError(f"{what} is not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ZooError(f"{what} is not valid YAML: it is nested too deeply") from None
    if expanded_values_over(data):
        raise ZooError(f"{what} expands to more than {MAX_VALUES:,} values once its aliases (*name) are "
                       "followed, as a 'billion laughs' file does; a config is a page of settings, so it is refused")
    return data


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The YAML file ``path`` as plain data (``load_yaml``); a missing, oversized or undecodable file is one error."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ZooError(f"{what} is not a regular file")
        if size > MAX_CONFIG_BYTES:
            raise ZooError(f"{what} is {size:,} bytes, over the {MAX_CONFIG_BYTES:,} a config may have")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ZooError(f"{what} does not exist") from None
    except OSError as err:
        raise ZooError(f"{what} cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ZooError(f"{what} is not valid YAML: {err}") from None
    return load_yaml(text, what)


# YAML's anchor (&a) or alias (*a) where a node may start: the only way a short value expands to a big one.
ANCHOR_OR_ALIAS = re.compile(r"(?:^|[\s\[{,:-])[&*][^\s\[\]{},]")


def check_inline_value(value: str, what: str) -> None:
    """A value given on the command line, which jsonargparse parses as YAML: bounded as a config file is.

    Over ``MAX_CONFIG_BYTES`` it is refused outright; one with YAML anchors or aliases is parsed
    here first (plain data only) and refused if it expands past ``MAX_VALUES``. A value that is
    not valid YAML is left to the parser, which reads it as a string or names the bad option.
    """
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ZooError(f"{what} is {size:,} bytes, over the {MAX_CONFIG_BYTES:,} a config or a value may have")
    if not ANCHOR_OR_ALIAS.search(value):
        return
    try:
        data = yaml.safe_load(value)
    except (yaml.YAMLError, RecursionError):
        return
    if expanded_values_over(data):
        raise ZooError(f"{what} expands to more than {MAX_VALUES:,} values once its aliases (*name) are "
                       "followed, as a 'billion laughs' file does; a value is a setting, so it is refused")
