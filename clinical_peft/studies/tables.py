"""Tables and plots from run directories: `python -m clinical_peft report pretrain --runs ...`.

Reads only metrics.json and metrics.csv, which hold numbers, never patient text.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import matplotlib

from clinical_peft.util.flags import CommandParser

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from clinical_peft.cli.run_dir import RunDir, data_settings
from clinical_peft.tasks.outcomes import TASKS  # noqa: E402
from clinical_peft.util.errors import InputError  # noqa: E402


def read_metrics(run_dir: str | Path) -> dict:
    path = RunDir(run_dir).metrics
    if not path.is_file():
        raise InputError(path, "run has no metrics.json (did it finish?)")
    return read_json(path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(
            path, f"not valid JSON (line {err.lineno}): a cut-off or edited file"
        ) from None


def read_curves(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged metric of a run as (step, value) pairs, from Lightning's metrics.csv."""
    curves: dict[str, list[tuple[int, float]]] = {}
    path = RunDir(run_dir).metrics_csv
    if not path.is_file():
        return curves
    with path.open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    curves.setdefault(key, []).append((int(row["step"]), float(value)))
    return curves


def plot_run(
    run_dir: str | Path, keys: tuple[str, ...] = ("train/loss", "val/loss")
) -> Path | None:
    """curves.png beside metrics.csv: training and validation loss against optimizer steps."""
    curves = read_curves(run_dir)
    shown = [k for k in keys if k in curves]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in shown:
        steps, values = zip(*curves[key])
        ax.plot(steps, values, marker="o" if key.startswith("val") else None, label=key)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(Path(run_dir).name)
    ax.legend()
    out = RunDir(run_dir).curves
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


PRETRAIN_COLUMNS = [
    ("method", "method"),
    ("trainable params", "params/trainable"),
    ("share (%)", "params/share"),
    ("train PPL", "train/ppl"),
    ("held-out PPL before", "val/ppl_before"),
    ("held-out PPL", "val/ppl"),
    ("tokens/s", "train/tokens_per_s"),
    ("fit time (s)", "time/fit_seconds"),
]


def _format(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "params/share":
        return f"{100 * value:.4f}"
    if key == "params/trainable":
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def pretrain_table(run_dirs: list[str | Path], out_prefix: str | Path) -> list[dict]:
    """The paper's Table 2 analogue, one row a run, as Markdown and CSV (and a PPL plot)."""
    rows = []
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        method = _adapter_method(run_dir) or Path(run_dir).name
        rows.append({"method": method, **metrics})
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    header = [title for title, _ in PRETRAIN_COLUMNS]
    with out_prefix.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(key, "") for _, key in PRETRAIN_COLUMNS])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_format(k, row.get(k)) for _, k in PRETRAIN_COLUMNS) + " |")
    out_prefix.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _plot_ppl(
        run_dirs, [r["method"] for r in rows], out_prefix.with_name(out_prefix.name + "_ppl.png")
    )
    return rows


def _adapter_method(run_dir: str | Path) -> str | None:
    """The peft method of a run's adapter (DoRA is peft's LoRA with `use_dora`)."""
    path = RunDir(run_dir).adapter / "adapter_config.json"
    if not path.is_file():
        return None
    config = read_json(path)
    return "dora" if config.get("use_dora") else config.get("peft_type", "").lower() or None


def _plot_ppl(run_dirs, names, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for run_dir, name in zip(run_dirs, names):
        curve = read_curves(run_dir).get("val/ppl", [])
        if curve:
            steps, values = zip(*curve)
            ax.plot(steps, values, marker="o", label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("held-out perplexity")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["instruct"]:  # study B's table: its own options (--tasks, --sft, --dpo)
        from clinical_peft.studies.tables_instruct import main as instruct_main

        return instruct_main(argv[1:])
    parser = CommandParser(prog="python -m clinical_peft report")
    parser.add_argument("kind", choices=["pretrain", "downstream", "instruct"], help="which table")
    parser.add_argument("--runs", nargs="+", required=True, help="run directories")
    parser.add_argument("--out", required=True, help="output prefix (writes .md, .csv, _ppl.png)")
    args = parser.parse_args(argv)
    if args.kind == "downstream":
        downstream_table(args.runs, args.out)
    else:
        pretrain_table(args.runs, args.out)
    print(Path(args.out).with_suffix(".md").read_text())


def _downstream_mode(config: dict) -> str:
    """`LLaMA + clinical LoRA (frozen) + downstream LoRA`-style row name of a downstream run."""
    model = config.get("model", {})
    if model.get("baseline"):  # a classical floor (clinical_peft/baseline.py)
        return str(model["baseline"])
    name = Path(str(model.get("base_model", "model"))).name
    if model.get("finetune_base"):
        return f"{name} (full fine-tune)"
    parts = [name]
    if model.get("clinical", "none") != "none":
        parts.append(f"clinical LoRA ({model['clinical']})")
    if model.get("downstream_lora"):
        parts.append("LoRA" if len(parts) == 1 else "downstream LoRA")
    return " + ".join(parts) if len(parts) > 1 else f"{name}, head only"


def downstream_table(run_dirs: list[str | Path], out_prefix: str | Path) -> list[dict]:
    """The paper's test-AUROC table (%): a row per backbone mode, a column per task, and the mean
    over the tasks a row has; Markdown and CSV."""
    import yaml

    rows: dict[str, dict] = {}
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        if "test/auroc" not in metrics:
            raise InputError(RunDir(run_dir).metrics, "no 'test/auroc': not a downstream run")
        path = RunDir(run_dir).config
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            raise InputError(path, "not valid YAML: a cut-off or edited file") from None
        task = data_settings(config).get("task", Path(run_dir).name)
        row = rows.setdefault(_downstream_mode(config), {})
        row[task] = 100 * metrics["test/auroc"]
    # the registry's tasks in its order, then any other task a run reports (a user's own source)
    tasks = list(dict.fromkeys([*TASKS, *(t for scores in rows.values() for t in scores)]))
    header = ["model", *tasks, "mean"]
    table = []
    for mode, scores in rows.items():
        done = [v for v in scores.values() if not math.isnan(v)]
        mean = sum(done) / len(done) if done else math.nan
        table.append({"model": mode, **{t: scores.get(t) for t in tasks}, "mean": mean})
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with out_prefix.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in table:
            writer.writerow(["" if row[k] is None else row[k] for k in header])
    cell = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        lines.append(f"| {row['model']} | " + " | ".join(cell(row[k]) for k in header[1:]) + " |")
    out_prefix.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return table
