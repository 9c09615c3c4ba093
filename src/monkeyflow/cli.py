"""The `monkeyflow` command: the library's stages outside Snakemake.

monkeyflow problems DATASET -o problems.jsonl
monkeyflow verify DATASET SAMPLES.jsonl -o verdicts.parquet
monkeyflow verify swebench_lite SAMPLES.jsonl -o verdicts.parquet [--repos DIR] [--runtime local|apptainer]
monkeyflow passk VERDICTS.parquet... [--k 1 10 100]
monkeyflow plan --budget 100 [1000 ...] [--unit samples|flops|dollars] [--dataset gsm8k]
monkeyflow lean-check [--config config.yaml] [--option KEY=VALUE ...]
monkeyflow slurm-profile [--partition P] [--account A] [--dest DIR] [--force]
monkeyflow containers build|pull [--dest DIR] [--image NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from monkeyflow.data import DatasetError, DatasetSpec, get_dataset
from monkeyflow.io import read_jsonl, read_parquet, write_parquet
from monkeyflow.metrics.passk import default_ks
from monkeyflow.records import RecordError, Sample
from monkeyflow.registry import PluginError, UnknownNameError
from monkeyflow.stages import DEFAULT_CACHE_PATH


def _dataset_spec(args: argparse.Namespace) -> DatasetSpec:
    hub = {}
    if args.hub:
        hub = {"path": args.hub, "split": args.split}
        if args.hub_config:
            hub["name"] = args.hub_config
    spec = {
        "source": "hub" if args.hub else "bundled",
        "limit": args.limit,
        "subset_seed": args.subset_seed,
        "num_fewshot": args.num_fewshot,
        "hub": hub,
    }
    if args.rows:
        try:
            spec["rows"] = [int(i) for i in args.rows.split(",") if i.strip()]
        except ValueError:
            raise DatasetError(
                f"--rows: expected comma-separated row indices, got {args.rows!r}"
            ) from None
    return DatasetSpec.from_config(args.dataset, spec)


def cmd_problems(args: argparse.Namespace) -> int:
    from monkeyflow.stages import prepare_problems

    problems = prepare_problems(_dataset_spec(args), args.output)
    print(f"{len(problems)} problems of {args.dataset} -> {args.output}", file=sys.stderr)
    return 0


def _option_value(text: str):
    """A --option value: YAML scalars (numbers, true/false, null), else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def verifier_for(args: argparse.Namespace):
    """The verifier `monkeyflow verify` uses: the dataset's (or --verifier), with its options from
    --config (as the workflow resolves them for that dataset) and then each --option KEY=VALUE."""
    from monkeyflow.config import read_config_file, validate, verifier_settings
    from monkeyflow.verify import get_verifier

    if args.config:
        config = read_config_file(args.config)
        config.setdefault("datasets", {}).setdefault(args.dataset, {})
        config.setdefault("models", {"none": {"backend": "replay", "path": "none"}})
        if args.verifier:
            config["datasets"][args.dataset]["verifier"] = args.verifier
        validate(config)
        name, options = verifier_settings(config, args.dataset)
    else:
        name = args.verifier or get_dataset(DatasetSpec(name=args.dataset)).verifier
        options = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option: expected KEY=VALUE, got {item!r}")
        options[key] = _option_value(value)
    for flag, key in (("repos", "repos"), ("runtime", "runtime")):
        value = getattr(args, flag, None)
        if value is None:
            continue
        if name != "swebench":
            raise ValueError(f"--{flag} is an option of the swebench verifier, not of {name!r}")
        options[key] = str(value)
    return get_verifier(name, options)


def cmd_verify(args: argparse.Namespace) -> int:
    from monkeyflow.cache import VerdictCache
    from monkeyflow.stages import read_problems, verdict_frame, verify_samples

    if args.problems:
        problems = read_problems(args.problems)
    else:
        problems = get_dataset(_dataset_spec(args)).problems()
    samples = []
    for i, row in enumerate(read_jsonl(args.samples)):
        samples.append(Sample.from_dict(row, where=f"{args.samples}: line {i + 1}"))
    verifier = verifier_for(args)
    cache = VerdictCache(args.cache) if args.cache else None
    try:
        verdicts, stats = verify_samples(problems, samples, verifier, cache)
    finally:
        verifier.close()
    frame = verdict_frame(verdicts)
    write_parquet(args.output, frame)
    counts = frame.group_by("status").len().sort("status")
    summary = ", ".join(f"{s}: {n}" for s, n in counts.rows())
    print(f"{len(verdicts)} verdicts ({summary}) -> {args.output}", file=sys.stderr)
    return 0


def cmd_passk(args: argparse.Namespace) -> int:
    from monkeyflow.stages import count_correct, passk_rows, read_verdict_table

    counts = count_correct(read_verdict_table(args.verdicts), args.errors)
    if counts.height == 0:
        print("error: no verdicts in the given files", file=sys.stderr)
        return 2
    n_min, n_max = int(counts["n"].min()), int(counts["n"].max())
    ks = args.k or default_ks(n_max)
    rows = passk_rows(counts, ks, {})
    skipped = [k for k in ks if k > n_max]
    table = pl.DataFrame(rows).select(
        "k", "pass_at_k", "pass_at_k_strict", "problems", "problems_total", "errors_excluded"
    )
    with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, float_precision=4):
        print(table)
    if n_min < n_max:
        print(
            f"note: problems have between {n_min} and {n_max} samples; pass@k averages over problems with n >= k",
            file=sys.stderr,
        )
    if skipped:
        print(
            f"note: k = {skipped} exceed every problem's sample count and are not reported",
            file=sys.stderr,
        )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from monkeyflow.analysis.plan import plan, unit_costs
    from monkeyflow.analysis.scaling import fits_of

    if not args.fits.exists():
        print(
            f"error: {args.fits} does not exist; run `snakemake` (rule scaling_fit) first",
            file=sys.stderr,
        )
        return 2
    fits = fits_of(read_parquet(args.fits))
    if args.cost.exists():
        costs = unit_costs(read_parquet(args.cost))
    elif args.unit == "samples":
        costs = {"samples": {key: (1.0, 0.0) for key in fits}}
    else:
        print(
            f"error: {args.cost} does not exist; budgets in {args.unit} need the cost table (rule cost)",
            file=sys.stderr,
        )
        return 2
    table = plan(fits, costs, {args.unit: args.budget}, dataset=args.dataset)
    if table.height == 0:
        where = f" for dataset {args.dataset!r}" if args.dataset else ""
        print(
            f"error: no model has both a scaling fit and a cost in {args.unit}{where} "
            f"(fits: {', '.join(f'{d}/{m}' for d, m in fits) or 'none'}); for dollars give models a `price`",
            file=sys.stderr,
        )
        return 2
    level = next(iter(fits.values())).level
    columns = [
        "dataset",
        "budget",
        "rank",
        "model",
        "k",
        "cost",
        "coverage",
        "lo",
        "hi",
        "p_best",
        "extrapolated",
    ]
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True, tbl_width_chars=200):
        print(table.select(columns))
    print(
        f"budget and cost in {args.unit} per problem; coverage is the fit's prediction at the k the budget buys, "
        f"[lo, hi] its {level:.0%} bootstrap band, p_best the share of bootstrap refits in which the model is best",
        file=sys.stderr,
    )
    return 0


def cmd_released_rows(args: argparse.Namespace) -> int:
    from monkeyflow.sampling.replay_backend import ReplayError, index_rows, load_released_rows

    where = f"{args.path} (config {args.config}, split {args.split})"
    try:
        rows = index_rows(load_released_rows(args.path, args.config, args.split), where)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = sorted({len(r["samples"]) for r in rows.values()})
    print(f"rows: [{', '.join(str(i) for i in sorted(rows))}]")
    print(
        f"{len(rows)} released problems with {'/'.join(map(str, counts))} samples each; put the line above "
        "under the dataset in config.yaml to select exactly them",
        file=sys.stderr,
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from monkeyflow.check import check_tree

    findings = check_tree(args.results)
    bad = [f for f in findings if not f.ok]
    shown = findings if args.all else bad
    if shown:
        width = max(len(f.path) for f in shown)
        for f in shown:
            print(f"{'ok' if f.ok else 'PROBLEM':8} {f.kind:9} {f.path:{width}}  {f.detail}")
    print(
        f"{len(findings)} files checked, {len(bad)} with problems"
        + ("; delete each damaged file and rerun `snakemake` to regenerate it" if bad else ""),
        file=sys.stderr,
    )
    return 1 if bad else 0


def cmd_lean_check(args: argparse.Namespace) -> int:
    """Check the Lean setup on 3 known-true and 3 known-false statements (exit 1 if any fails)."""
    from monkeyflow.verify.lean.validate import check_statements, report, validate

    args.dataset, args.verifier = "minif2f", None
    verifier = verifier_for(args)
    failures = []
    try:
        ok, results, seconds = validate(verifier)
        print(report(results, seconds))
        errors = sorted({c.detail for _, c in results if c.status == "error"})
        for detail in errors:
            print(f"error verdict: {detail}", file=sys.stderr)
        if args.statements:
            problems = get_dataset(DatasetSpec(name="minif2f")).problems()
            failures = check_statements(verifier, problems)
            for name, why in failures:
                print(f"FAIL statement {name}: {why}")
            print(f"{len(problems) - len(failures)}/{len(problems)} bundled statements elaborate")
    finally:
        verifier.close()
    ok = ok and not failures
    if not ok:
        print(
            "error: the Lean setup does not judge the known statements right; see docs/lean.md",
            file=sys.stderr,
        )
    return 0 if ok else 1


def cmd_slurm_profile(args: argparse.Namespace) -> int:
    from monkeyflow.slurm import SlurmProfileError, write_profile

    try:
        path, text, warnings = write_profile(
            args.dest,
            partition=args.partition,
            account=args.account,
            status_command=args.status_command,
            force=args.force,
            jobs=args.jobs,
            latency_wait=args.latency_wait,
            retries=args.retries,
        )
    except SlurmProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}:\n")
    print(text)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    hint = "slurm" if args.dest is None else str(path.parent)
    print(f"run the workflow with: snakemake --profile {hint}", file=sys.stderr)
    return 0


def cmd_containers(args: argparse.Namespace) -> int:
    from monkeyflow import containers

    dest = args.dest if args.dest is not None else containers.default_dest()
    try:
        if args.action == "build":
            results = containers.build(
                args.lock, dest, args.image, force=args.force, build_args=args.build_arg or []
            )
        else:
            results = containers.pull(args.lock, dest, args.image, force=args.force)
    except containers.ContainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in containers.summary(results):
        print(line)
    if Path(dest).resolve() != (Path(args.lock).parent).resolve():
        print(
            f"the workflow finds them with: export MONKEYFLOW_CONTAINERS={Path(dest).resolve()}",
            file=sys.stderr,
        )
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    import yaml

    from monkeyflow.config import full_schema

    print(yaml.safe_dump(full_schema(), sort_keys=False, width=100))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        epilog="--debug (anywhere on the line): show the traceback of a failure",
        prog="monkeyflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def dataset_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("dataset", help="benchmark name, e.g. gsm8k, math")
        p.add_argument(
            "--limit", type=int, default=None, help="a random subset of this many problems"
        )
        p.add_argument(
            "--rows",
            default=None,
            help="exactly these row indices, comma-separated (instead of --limit)",
        )
        p.add_argument("--subset-seed", type=int, default=0)
        p.add_argument("--num-fewshot", type=int, default=None)
        p.add_argument(
            "--hub",
            default=None,
            help="load from the Hugging Face hub (id or local folder) instead of the bundled copy",
        )
        p.add_argument("--hub-config", default=None)
        p.add_argument("--split", default="test")

    p = sub.add_parser("problems", help="write the canonical problems of a dataset")
    dataset_args(p)
    p.add_argument("-o", "--output", required=True, type=Path)
    p.set_defaults(func=cmd_problems)

    p = sub.add_parser("verify", help="verify samples (jsonl with problem_id, sample_index, text)")
    dataset_args(p)
    p.add_argument("samples", type=Path)
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument(
        "--problems",
        type=Path,
        default=None,
        help="problems.jsonl (default: the dataset's, as `problems` writes them)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        nargs="?",
        const=Path(DEFAULT_CACHE_PATH),
        default=None,
        help=f"verdict cache to read and extend (without a value: the workflow's, {DEFAULT_CACHE_PATH})",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="take the verifier's options from this config (as the workflow does)",
    )
    p.add_argument(
        "--verifier", default=None, help="judge with this verifier instead of the dataset's"
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a verifier option, e.g. backend=sympy (repeatable)",
    )
    p.add_argument(
        "--repos",
        type=Path,
        default=None,
        help="swebench: folder of source snapshots <instance_id>.tar.gz (option repos)",
    )
    p.add_argument(
        "--runtime",
        choices=["local", "apptainer"],
        default=None,
        help="swebench: judge in a venv built here (local) or in the instance image (apptainer)",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "config-schema",
        help="print the full config schema: the config file's keys and every plugin's options",
    )
    p.set_defaults(func=cmd_config_schema)

    p = sub.add_parser(
        "check", help="validate a results tree: digests, schemas, each shard's sample range"
    )
    p.add_argument("results", nargs="?", type=Path, default=Path("results"))
    p.add_argument("--all", action="store_true", help="list the files that are fine too")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "lean-check",
        help="check the Lean verifier's setup on 3 known-true and 3 known-false statements",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="take the lean options from this config"
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a lean option, e.g. mode=server or repl=/path/to/repl (repeatable)",
    )
    p.add_argument(
        "--statements",
        action="store_true",
        help="also check that all 130 bundled MiniF2F statements elaborate (with sorry)",
    )
    p.set_defaults(func=cmd_lean_check)

    p = sub.add_parser(
        "slurm-profile",
        help="write the SLURM site profile for `snakemake --profile slurm` "
        "(default: $XDG_CONFIG_HOME/snakemake/slurm/config.yaml)",
    )
    p.add_argument("--partition", default=None, help="default partition (else the cluster's)")
    p.add_argument("--account", default=None, help="account to charge (else the plugin guesses)")
    p.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="write DIR/config.yaml instead (then `snakemake --profile DIR`)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing profile")
    p.add_argument(
        "--status-command",
        choices=["auto", "sacct", "squeue"],
        default="auto",
        help="job status source (auto: sacct where accounting answers, else squeue)",
    )
    p.add_argument("--jobs", type=int, default=200, help="jobs in the queue at once")
    p.add_argument("--latency-wait", type=int, default=60, help="seconds for outputs to appear")
    p.add_argument("--retries", type=int, default=2, help="resubmissions of a failed job")
    p.set_defaults(func=cmd_slurm_profile)

    p = sub.add_parser(
        "containers",
        help="build (apptainer build containers/*.def) or pull the images pinned in "
        "containers/images.lock.yaml",
    )
    p.add_argument("action", choices=["build", "pull"])
    p.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="folder for the .sif files (default: $MONKEYFLOW_CONTAINERS, else containers/)",
    )
    p.add_argument(
        "--image",
        action="append",
        default=None,
        help="only this image (repeatable): analysis, lean, sandbox, vllm",
    )
    p.add_argument(
        "--lock",
        type=Path,
        default=Path("containers/images.lock.yaml"),
        help="the lock file (default: containers/images.lock.yaml; run from the checkout)",
    )
    p.add_argument("--force", action="store_true", help="build or pull even if up to date")
    p.add_argument(
        "--build-arg",
        action="append",
        default=None,
        metavar="ARG",
        help="extra argument for `apptainer build`, e.g. --build-arg=--fakeroot (repeatable)",
    )
    p.set_defaults(func=cmd_containers)

    p = sub.add_parser("passk", help="print pass@k from verdict files")
    p.add_argument("verdicts", nargs="+", type=Path)
    p.add_argument(
        "--k", type=int, nargs="+", default=None, help="k values (default 1, 2, 4, ..., n)"
    )
    p.add_argument(
        "--errors",
        choices=["exclude", "incorrect"],
        default="exclude",
        help="`error` verdicts left out of n (default) or counted as wrong (as verify.errors)",
    )
    p.set_defaults(func=cmd_passk)

    p = sub.add_parser(
        "plan", help="rank models by predicted coverage for a budget (from the scaling fits)"
    )
    p.add_argument(
        "--budget", type=float, nargs="+", required=True, help="budget(s) per problem, in --unit"
    )
    p.add_argument("--unit", choices=["samples", "flops", "dollars"], default="samples")
    p.add_argument(
        "--dataset", default=None, help="only this dataset (default: every dataset with fits)"
    )
    p.add_argument("--fits", type=Path, default=Path("results/summary/fits.parquet"))
    p.add_argument("--cost", type=Path, default=Path("results/summary/cost.parquet"))
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "released-rows",
        help="the row indices a release of samples covers, as a dataset `rows:` line",
    )
    p.add_argument(
        "path", help="released samples: hub id, local folder or file (as a replay model's path)"
    )
    p.add_argument(
        "--config", default=None, help="the release's config, e.g. GSM8K_Llama-3-8B-Instruct"
    )
    p.add_argument("--split", default="test")
    p.set_defaults(func=cmd_released_rows)
    return parser


def error_line(exc: BaseException) -> str:
    """One line for the user: what went wrong, naming the file where there is one."""
    import errno

    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        if exc.errno == errno.ENOSPC:
            return (
                f"cannot write{where}: no space left on device; free space or write elsewhere (-o)"
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"cannot write{where}: {exc.strerror}; choose a folder you can write to"
        return f"{exc.strerror or exc}{':' + where if where else ''}"
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}" if exc.filename else str(exc)
    known = (DatasetError, RecordError, UnknownNameError, PluginError, ValueError, KeyError)
    text = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()) or type(exc).__name__
    if not isinstance(exc, known):
        text += " (rerun with --debug for the traceback)"
    return text


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure is one line, unless --debug
        if debug:
            raise
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
