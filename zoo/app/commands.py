"""The ``zoo`` subcommands that are not Lightning's: bench, leaderboard, reproduce.

    zoo bench list
    zoo bench run gradient_study --tier cpu [--models ...] [--seeds 0 1 2] [--records DIR]
    zoo bench run adding_t100 --tier cpu --model_config my_lstm.yaml --records my_runs/
    zoo bench run adding_t100 --tier cpu --jobs 2 [--shard 0/4] [--launcher slurm --shards 8 ...]
    zoo leaderboard build [--records leaderboards/records] [--out leaderboards]
    zoo leaderboard compare my_runs/ [--records leaderboards/records]
    zoo leaderboard site --out site/ [--records leaderboards/records] [--figures leaderboards]
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
from zoo.errors import ZooError, check_choice, check_int
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
    run.add_argument("--no_progress", "--quiet", dest="no_progress", action="store_true",
                     help="no progress bars (for CI and logs): one line per finished run, then the summary")
    add_parallel_arguments(run)
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
    parallel = parallel_settings(args)
    quiet_lightning()
    own = [load_model_config(path) for path in args.model_config]
    settings = dict(models=args.models, seeds=args.seeds, records_dir=args.records, weights_dir=args.weights,
                    data_dir=args.data_dir, checkpoints_dir=checkpoints, accelerator=args.accelerator,
                    wandb=args.wandb, own_models=own, jobs=args.jobs)
    if parallel["launcher"] != "none":
        from zoo.app.launch import submit_shards, wait_for

        jobs = submit_shards(args.name, args.tier, launcher=parallel["launcher"], options=parallel["options"],
                             run_kwargs=settings)
        print(f"{args.name} [{args.tier}]: {len(jobs)} shard job(s) submitted ({parallel['launcher']}): "
              f"{', '.join(job.job_id for _, job in jobs)}; logs in {parallel['options'].folder}")
        if parallel["launcher"] != "local" and not args.wait:
            print(f"records appear in {args.records} as the jobs finish; the same command again resubmits "
                  "only what has no record")
            return 0
        done = wait_for(jobs)
    else:
        done = run_benchmark(args.name, args.tier, progress=not args.no_progress, shard=parallel["shard"],
                             **settings)
    counts = {status: sum(d["status"] == status for d in done)
              for status in ("ran", "diverged", "exists", "running elsewhere")}
    print(f"{args.name} [{args.tier}]: {counts['ran']} ran, {counts['diverged']} diverged, "
          f"{counts['exists']} already recorded, {counts['running elsewhere']} running in another suite; "
          f"records in {args.records}")
    return 0


def add_parallel_arguments(run: argparse.ArgumentParser) -> None:
    """``zoo bench run``'s options for running pairs side by side, on several machines or as cluster jobs."""
    from zoo.app.launch import DEFAULT_FOLDER, LAUNCHERS
    from zoo.app.parallel import SHARD_FORM

    group = run.add_argument_group("parallel and distributed runs (README: Running suites in parallel)")
    group.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="run this many (model, seed) pairs at once, each in its own process with its share of "
                            "the torch threads (default 1)")
    group.add_argument("--shard", metavar="i/N",
                       help=f"run only this machine's share of the pairs: {SHARD_FORM}; give every machine the same "
                            "suite (--models, --seeds)")
    group.add_argument("--launcher", default="none", metavar="NAME",
                       help=f"one of: {', '.join(LAUNCHERS)} (default none: run here). slurm (or submitit) sends "
                            "--shards jobs to a SLURM cluster through submitit (pip install -e '.[cluster]'); local "
                            "runs the same jobs as processes on this machine and waits for them")
    group.add_argument("--shards", type=int, metavar="N",
                       help="with --launcher: how many jobs split the suite (default: one a pair)")
    group.add_argument("--slurm_partition", metavar="NAME",
                       help="with --launcher slurm: the partition (default: the cluster's)")
    group.add_argument("--slurm_time", type=int, default=60, metavar="MINUTES",
                       help="with --launcher: each job's time limit in minutes (default 60); a job cut off is "
                            "requeued and resumes from its checkpoints")
    group.add_argument("--slurm_cpus_per_task", type=int, default=4, metavar="N",
                       help="with --launcher: CPUs each job asks for, and its torch threads (default 4)")
    group.add_argument("--slurm_gpus_per_node", type=int, default=0, metavar="N",
                       help="with --launcher: GPUs each job asks for (default 0; add --accelerator cuda)")
    group.add_argument("--submitit_folder", default=DEFAULT_FOLDER, metavar="DIR",
                       help=f"with --launcher: submitit's job files and logs, on a disk the nodes share "
                            f"(default {DEFAULT_FOLDER})")
    group.add_argument("--wait", action="store_true",
                       help="with --launcher slurm: wait for the jobs and print the suite's summary "
                            "(local always waits)")


def parallel_settings(args: argparse.Namespace) -> dict:
    """The parallel options checked together: each bad value or combination is one error naming the valid ones."""
    from zoo.app.launch import LAUNCHERS, ClusterOptions
    from zoo.app.parallel import parse_shard

    check_int("--jobs", args.jobs, low=1)
    launcher = check_choice("--launcher", args.launcher, LAUNCHERS)
    shard = parse_shard(args.shard) if args.shard is not None else None
    cluster_only = [flag for flag, given in (("--shards", args.shards is not None),
                                             ("--slurm_partition", args.slurm_partition is not None),
                                             ("--wait", args.wait)) if given]
    if launcher == "none":
        if cluster_only:
            raise ZooError(f"{' and '.join(cluster_only)} {'goes' if len(cluster_only) == 1 else 'go'} with "
                           "--launcher local, slurm or submitit; to run one machine's share of a suite use --shard i/N")
        return {"launcher": launcher, "shard": shard, "options": None}
    if shard is not None:
        raise ZooError(f"--shard and --launcher {launcher} do not go together: the launcher makes its own shards "
                       "(--shards N)")
    if launcher == "local" and args.slurm_partition is not None:
        raise ZooError("--slurm_partition goes with --launcher slurm or submitit, not local")
    options = ClusterOptions(shards=args.shards, partition=args.slurm_partition, time_min=args.slurm_time,
                             cpus_per_task=args.slurm_cpus_per_task, gpus_per_node=args.slurm_gpus_per_node,
                             folder=str(check_folder("--submitit_folder", args.submitit_folder)))
    return {"launcher": launcher, "shard": None, "options": options}


def leaderboard_main(argv: list[str]) -> int:
    from zoo.app.boards import build, compare, compare_text

    parser = argparse.ArgumentParser(prog="zoo leaderboard", description="Tables from run records.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="regenerate leaderboards/ (tables, CSVs, figures, index, site/) from the records")
    b.add_argument("--records", default=DEFAULT_RECORDS, help="folder of run records (default: %(default)s)")
    b.add_argument("--out", default="leaderboards", help="folder the boards are written to (default: %(default)s)")
    b.add_argument("--allow_dirty", action="store_true",
                   help="also build from records made from a checkout with local changes (marked on their boards)")
    b.add_argument("--readme", default="README.md",
                   help="a README whose block between <!-- leaderboard:start/end --> markers is regenerated "
                        "(left alone when it has none)")
    s = sub.add_parser("site", help="write the boards as a static web site (HTML, CSS, our own script, the boards' "
                       "PNGs), viewable from file:// or `python -m http.server -d DIR`")
    s.add_argument("--out", required=True, help="folder the site is written to (replaced whole; a folder holding "
                                                "anything else is refused)")
    s.add_argument("--records", default=DEFAULT_RECORDS, help="folder of run records (default: %(default)s)")
    s.add_argument("--figures", default="leaderboards",
                   help="folder holding the boards' PNGs that `zoo leaderboard build` wrote (default: %(default)s)")
    s.add_argument("--allow_dirty", action="store_true",
                   help="also build from records made from a checkout with local changes (marked on their pages)")
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
    if args.command == "site":
        from zoo.app.site import build_site

        written = build_site(args.records, args.out, figures=args.figures, allow_dirty=args.allow_dirty)
        print(f"wrote the site, {len(written)} files, to {args.out}; open {Path(args.out) / 'index.html'}")
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
            raise ZooError(f"no run records (*.json) under {path}" + (
                "" if args.max_seconds is None else f" that trained in at most {args.max_seconds:g} s (--max_seconds)"))
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
