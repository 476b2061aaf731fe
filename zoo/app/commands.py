"""The ``zoo`` subcommands that are not Lightning's: bench, leaderboard, reproduce.

    zoo bench list
    zoo bench run gradient_study --tier cpu [--models ...] [--seeds 0 1 2] [--records DIR]
    zoo bench run adding_t100 --tier cpu --model_config my_lstm.yaml --records my_runs/
    zoo leaderboard build [--records leaderboards/records] [--out leaderboards]
    zoo leaderboard compare my_runs/ [--records leaderboards/records]
    zoo reproduce leaderboards/records/adding_t100/cpu/lstm_1x128.s0.json
    zoo reproduce leaderboards/records --max_seconds 60 --per_board 3   # which records the code still gives

Exit status: 0 on success (for reproduce: identical or within tolerance), 1 when a
reproduction differs, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.app.runner import (DEFAULT_CHECKPOINTS, DEFAULT_RECORDS, DEFAULT_WEIGHTS, load_model_config, quiet_lightning,
                            replay_selection, reproduce, run_benchmark)
from zoo.errors import ZooError, check_choice
from zoo.files import check_folder

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu")  # Lightning's accelerator names


def bench_main(argv: list[str]) -> int:
    from zoo.app.catalogue import BENCHMARKS, TIERS

    parser = argparse.ArgumentParser(prog="zoo bench", description="Run benchmarks; one record per (model, seed).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the benchmarks, their tiers, models and seeds")
    run = sub.add_parser("run", help="run every (model, seed) pair of a tier that has no record yet")
    run.add_argument("name", help=f"one of: {', '.join(BENCHMARKS)}")
    run.add_argument("--tier", default="cpu", help=f"one of: {', '.join(TIERS)} (default cpu)")
    run.add_argument("--models", nargs="+", help="a subset of the benchmark's models (default: all)")
    run.add_argument("--seeds", nargs="+", type=int, help="default: the tier's seeds")
    run.add_argument("--model_config", nargs="+", default=[],
                     help="your own model(s), YAML: name, backbone, optim, clip_val, module; run under this "
                          "benchmark's settings and budget (then `zoo leaderboard compare`)")
    run.add_argument("--records", default=DEFAULT_RECORDS, help=f"records folder (default {DEFAULT_RECORDS})")
    run.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"where trained weights go (default {DEFAULT_WEIGHTS})")
    run.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS,
                     help=f"where each run checkpoints, to resume after a kill (default {DEFAULT_CHECKPOINTS}; "
                          "'none': no checkpoints)")
    run.add_argument("--data_dir", help="folder of the original data files (offline)")
    run.add_argument("--accelerator", help="override the tier's accelerator (cpu, cuda, mps, auto)")
    run.add_argument("--wandb", action="store_true", help="also log each run to Weights & Biases (WANDB_MODE=offline works)")
    run.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "list":
        for bench in BENCHMARKS.values():
            tiers = "; ".join(f"{tier}: seeds {list(bench.tier_seeds(tier))}" for tier in bench.tiers)
            print(f"{bench.name:<16} {len(bench.models):>3} models  {tiers}")
            print(f"{'':<16} {bench.description}")
        return 0
    if args.accelerator is not None:
        check_choice("accelerator", args.accelerator, ACCELERATORS)
    check_folder("--records", args.records)
    check_folder("--weights", args.weights)
    checkpoints = None if args.checkpoints.lower() == "none" else check_folder("--checkpoints", args.checkpoints)
    quiet_lightning()
    own = [load_model_config(path) for path in args.model_config]
    done = run_benchmark(args.name, args.tier, models=args.models, seeds=args.seeds, records_dir=args.records,
                         weights_dir=args.weights, data_dir=args.data_dir,
                         checkpoints_dir=checkpoints, accelerator=args.accelerator,
                         wandb=args.wandb, progress=not args.no_progress,
                         own_models=own)
    counts = {status: sum(d["status"] == status for d in done)
              for status in ("ran", "diverged", "exists", "running elsewhere")}
    print(f"{args.name} [{args.tier}]: {counts['ran']} ran, {counts['diverged']} diverged, "
          f"{counts['exists']} already recorded, {counts['running elsewhere']} running in another suite; "
          f"records in {args.records}")
    return 0


def leaderboard_main(argv: list[str]) -> int:
    from zoo.app.boards import build, compare, compare_text

    parser = argparse.ArgumentParser(prog="zoo leaderboard", description="Tables from run records.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="regenerate leaderboards/ (tables, CSVs, figures, index) from the records")
    b.add_argument("--records", default=DEFAULT_RECORDS, help="folder of run records (default: %(default)s)")
    b.add_argument("--out", default="leaderboards", help="folder the boards are written to (default: %(default)s)")
    b.add_argument("--allow_dirty", action="store_true",
                   help="also build from records made from a checkout with local changes (marked on their boards)")
    b.add_argument("--readme", default="README.md",
                   help="a README whose block between <!-- leaderboard:start/end --> markers is regenerated "
                        "(left alone when it has none)")
    c = sub.add_parser("compare", help="place a run (a record file or a folder of them) on its benchmark's board")
    c.add_argument("path", help="your run record (JSON) or a folder of them")
    c.add_argument("--records", default=DEFAULT_RECORDS,
                   help="folder of the board's run records (default: %(default)s)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args(argv)
    if args.command == "build":
        written = build(args.records, args.out, readme=args.readme, allow_dirty=args.allow_dirty)
        print(f"wrote {len(written)} files under {args.out}")
        return 0
    results = compare(args.path, args.records)
    print(json.dumps(results, indent=2) if args.json else compare_text(results))
    return 0


def reproduce_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo reproduce", description="Run a record's config again and compare.")
    parser.add_argument("record", help="a run record (JSON), or a folder of them: each is re-run and a summary "
                                       "names every record the current code no longer gives")
    parser.add_argument("--data_dir", help="folder of the original data files (offline)")
    parser.add_argument("--out", help="also write the re-run's record here (one record only)")
    parser.add_argument("--max_seconds", type=float,
                        help="with a folder: only records whose run trained in at most this many seconds")
    parser.add_argument("--per_board", type=int,
                        help="with a folder: at most this many records a board, the cheapest of each cell")
    args = parser.parse_args(argv)
    quiet_lightning()
    path = Path(args.record)
    if path.is_dir():
        if args.out:
            raise ZooError("--out takes one record; a folder's re-runs are compared, not written")
        files = replay_selection(path, max_seconds=args.max_seconds, per_board=args.per_board)
        if not files:
            raise ZooError(f"no record under {path} matches --max_seconds {args.max_seconds}")
        results = [reproduce(file, data_dir=args.data_dir) for file in files]
        for result in results:
            print(f"{result['record']}: {result['verdict']} (recorded {result['recorded']!r}, "
                  f"re-run {result['rerun']!r})")
        differs = [r["record"] for r in results if r["verdict"] == "differs"]
        print(f"{len(results) - len(differs)} of {len(results)} records reproduced"
              + (f"; the current code no longer gives: {', '.join(differs)}" if differs else ""))
        return 1 if differs else 0
    result = reproduce(path, data_dir=args.data_dir, out=args.out)
    for note in result["notes"]:
        print(f"note: {note}")
    if result["difference"] is None:
        print(f"{result['record']}: recorded {result['recorded']!r}, re-run {result['rerun']!r}")
    else:
        print(f"{result['record']}: test {result['metric']} recorded {result['recorded']:.6g}, re-run "
              f"{result['rerun']:.6g} (difference {result['difference']:+.3g}, tolerance {result['tolerance']:g}; "
              f"steps {result['steps'][0]} vs {result['steps'][1]}; weights "
              f"{'identical' if result['weights_identical'] else 'differ'})")
    print(f"verdict: {result['verdict']}")
    return 0 if result["verdict"] != "differs" else 1


def pretrained_main(argv: list[str]) -> int:
    from zoo import pretrained
    from zoo.app import release
    from zoo.registry import list_models

    parser = argparse.ArgumentParser(prog="zoo pretrained", description="Pretrained models: list, info, download, "
                                     "export a run, verify.")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="pretrained names matching a wildcard pattern")
    ls.add_argument("pattern", nargs="?", default="*")
    info = sub.add_parser("info", help="a model's card")
    info.add_argument("name")
    info.add_argument("--json", action="store_true")
    dl = sub.add_parser("download", help="fetch a model's files into the cache, checked")
    dl.add_argument("name")
    ex = sub.add_parser("export", help="turn a run record into a release: safetensors, JSON config, card, manifest; "
                        "or, with --benchmark and --model, the model's seed with the best validation value")
    ex.add_argument("record", nargs="?", help="a run record (JSON); or name --benchmark and --model instead")
    ex.add_argument("--benchmark", help="with --model: release the seed picked on the validation split")
    ex.add_argument("--model", help="with --benchmark: the model whose seeds are compared")
    ex.add_argument("--tier", default="cpu", help="with --benchmark: the board's tier (default cpu)")
    ex.add_argument("--records", default=DEFAULT_RECORDS, help=f"with --benchmark: the records folder "
                    f"(default {DEFAULT_RECORDS})")
    ex.add_argument("--out", default="release")
    ex.add_argument("--weights_dir", default=DEFAULT_WEIGHTS)
    ex.add_argument("--tag", help="default: the benchmark's name")
    ex.add_argument("--data_dir", help="folder of the original data files (a language model's vocabulary)")
    ve = sub.add_parser("verify", help="evaluate pretrained models on their test sets against their cards")
    ve.add_argument("names", nargs="*", help="default: every pretrained model")
    ve.add_argument("--limit_batches", type=float, default=1.0, help="share (0.1) or count (5.0 -> 5) of test batches")
    ve.add_argument("--data_dir")
    args = parser.parse_args(argv)
    if args.command == "list":
        models = pretrained.manifest()
        for name in list_models(args.pattern, pretrained=True):
            card = models[name]
            print(f"{name:<32} test {card['metric']} {card['metrics'][card['metric']]:<10.5g} "
                  f"{card['params']:>10,} params {card['file']['bytes']:>12,} bytes")
        return 0
    if args.command == "info":
        card = pretrained.entry(args.name)
        print(json.dumps(card, indent=2) if args.json else release.card_text(args.name, card))
        return 0
    if args.command == "download":
        for path in pretrained.download(args.name):
            print(path)
        return 0
    if args.command == "export":
        if (args.benchmark is None) != (args.model is None) or (args.record is None) == (args.benchmark is None):
            raise ZooError("zoo pretrained export takes a run record, or --benchmark NAME and --model NAME "
                           "(the seed with the best validation value), not both")
        if args.record is not None:
            name, card = release.export(args.record, args.out, weights_dir=args.weights_dir, tag=args.tag,
                                        data_dir=args.data_dir)
        else:
            name, card = release.export_selected(args.records, args.benchmark, args.model, args.out, tier=args.tier,
                                                 weights_dir=args.weights_dir, tag=args.tag, data_dir=args.data_dir)
            print(f"{name}: seed {card['seed']} of {len(card['seeds']['seeds'])}, by {card['val']['metric']} "
                  f"{card['val']['value']:.6g}")
        print(f"{name}: {card['file']['name']} ({card['file']['bytes']:,} bytes, sha256 {card['file']['sha256']}) "
              f"and its card in {args.out}")
        return 0
    limit = int(args.limit_batches) if args.limit_batches > 1 else args.limit_batches
    tolerance = 1e-3 if limit == 1.0 else release.SLICE_TOLERANCE
    failed = 0
    for name in args.names or list(pretrained.manifest()):
        model = pretrained.load(name)
        value = release.evaluate(model, limit_batches=limit, data_dir=args.data_dir)
        card = model.card["metrics"][model.card["metric"]]
        ok = abs(value - card) <= tolerance * abs(card)
        failed += not ok
        print(f"{name:<32} {model.card['metric']} {value:.6g} (card {card:.6g}, relative tolerance {tolerance:g}): "
              f"{'ok' if ok else 'FAILED'}")
    return 1 if failed else 0
