"""A release's card as the Hugging Face Hub reads it: metadata built by huggingface_hub itself.

``ModelCardData`` with one ``EvalResult`` per test metric becomes the card's YAML front
matter, its ``model-index`` included, so the Hub shows the results table and links the
task and the dataset. The front matter is written by the Hub's own code, not by hand,
so it is what the Hub parses. Everything comes from the card (the manifest entry):
nothing here knows a particular task.
"""

from __future__ import annotations

from typing import Any

LIBRARY_NAME = "rnn-zoo"
LICENSE = "apache-2.0"  # the weights' licence; the training data's terms are in the card's body (data_licence)


def hub_task_type(card: dict[str, Any]) -> str:
    """The Hub task id (hf.co/tasks) that the card's task is, read from its facts; else the task's own name.

    A token model that predicts every next token is text generation; a model that reads
    images (its preprocessing gives an image size) is image classification. The synthetic
    long-dependency tasks are none of the Hub's tasks, so they keep their own name, which
    the Hub shows as it is.
    """
    task = card["task"]
    if task.get("input_kind") == "tokens" and task.get("head") == "every":
        return "text-generation"
    if (card.get("preprocessing") or {}).get("image_size") and task.get("loss") == "cross_entropy":
        return "image-classification"
    return task["name"]


def dataset_name(data: dict[str, Any]) -> str:
    """The DataModule and its settings in words: ``AddingProblem (seq_len=100)``."""
    args = data.get("args") or {}
    settings = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"{data['class']} ({settings})" if settings else data["class"]


def card_metadata(name: str, card: dict[str, Any]):
    """The card's ``huggingface_hub.ModelCardData``: library, licence, tags and a model-index of its test metrics.

    Each test metric is an ``EvalResult`` on the card's task and dataset (the task's name as
    the dataset's id, the DataModule and its settings as its name and arguments, the split
    the card was evaluated on), the target metric first.
    """
    from huggingface_hub import EvalResult, ModelCardData

    task, metric = card["task"], card["metric"]
    metrics = {metric: card["metrics"][metric], **{k: v for k, v in card["metrics"].items() if k != metric}}
    split = (card.get("evaluation") or {}).get("split", "test")
    results = [EvalResult(task_type=hub_task_type(card), task_name=task["name"], dataset_type=task["name"],
                          dataset_name=dataset_name(card["data"]), dataset_split=split,
                          dataset_args=dict(card["data"].get("args") or {}) or None,
                          metric_type=key, metric_name=f"test {key}", metric_value=value)
               for key, value in metrics.items()]
    return ModelCardData(library_name=LIBRARY_NAME, license=LICENSE, model_name=name,
                         tags=["rnn", card["model"]["backbone"]["cell"], task["name"]],
                         metrics=list(metrics), eval_results=results)


def card_document(name: str, card: dict[str, Any], body: str) -> str:
    """The whole card: the Hub's front matter (``ModelCard``, which parses it back as the Hub will) and ``body``."""
    from huggingface_hub import ModelCard

    return str(ModelCard(f"---\n{card_metadata(name, card).to_yaml()}\n---\n\n{body}"))
