"""Hyperparameter search with Optuna: `python -m clinical_peft sweep downstream --task mor`.

A sweep spec (experiments/sweeps/<name>.yaml) names a stage, its configs and fixed args (as a grid
row), the search space (dotted CLI keys -> Optuna distributions), the objective (a validation
metric of metrics.json: never a test one) and the pruner; it is checked against its schema
(studies/schema.py) before anything runs. Each trial is an ordinary run directory
(runs/sweeps/<name>-<task>/trial<k>/) made by a subprocess; the trial's parameters and the
pruning callback (studies/pruning.py: the runner itself never loads Lightning) travel in a YAML
overlay (configs/trial<k>.yaml), so the run's config.yaml says what it ran. The callback reports
the monitored metric at each validation epoch end of fitting and stops a hopeless trial
(MedianPruner by default). Storage: SQLite inside the sweep directory (a killed sweep resumes:
its orphaned trial is failed and its parameters enqueued again), or `--storage` (an RDB URL, or
a *.log path for Optuna's journal file) that many workers share. The storage reaches the trials
through their environment, never a file (a URL may hold a password; report.md and error lines
show it redacted). The budget (`--trials`) counts finished trials over all workers and
restarts. best.yaml is the best trial's overlay (`make downstream ARGS="-c best.yaml"`);
report.md, history.png, importance.png.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from clinical_peft.cli.run_dir import RunDir
from clinical_peft.studies.child import exit_on_sigterm, run_to_end
from clinical_peft.studies.grid import command, last_error, spec_arguments, spec_parser
from clinical_peft.studies.schema import check_sweep
from clinical_peft.studies.spec import Run, _fill, config_files, read_spec
from clinical_peft.studies.storage import (
    STORAGE_ENV,
    open_storage,
    redacted,
    shared_storage,
    storage_error,
)
from clinical_peft.studies.sweep_checks import (
    check_trial_inputs,
    refuse_if_none_finished,
    trial_log,
)
from clinical_peft.util.atomic import locked
from clinical_peft.util.errors import InputError, at_least_one

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def nested(flat: dict) -> dict:
    """{"model.optim.lr": 1e-3} -> {"model": {"optim": {"lr": 1e-3}}} (a config overlay)."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def suggest(trial: optuna.Trial, space: dict, where: str) -> dict:
    params = {}
    for key, dist in space.items():
        kind = dist.get("type", "float")
        if kind == "categorical":
            params[key] = trial.suggest_categorical(key, list(dist["choices"]))
        elif kind in ("float", "int"):
            fn = trial.suggest_float if kind == "float" else trial.suggest_int
            params[key] = fn(key, dist["low"], dist["high"], log=bool(dist.get("log", False)))
        else:
            raise InputError(where, f"field 'params.{key}.type': unknown {kind!r}")
    return params


class Sweep:
    def __init__(self, path: str | Path, task: str | None, out_root: str | Path = "runs/sweeps",
                 storage: str | None = None, variables: dict | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        raw = read_spec(self.path, "sweep", "stage, configs, params, objective, ...")
        check_sweep(raw, str(self.path))
        mapping = {k: str(v) for k, v in (raw.get("vars") or {}).items()}
        mapping.update(variables or {}, task=task or "")
        where = str(self.path)
        self.name = f"{raw.get('name', self.path.stem)}{'-' + task if task else ''}"
        self.dir = Path(out_root) / self.name
        self.stage = raw.get("stage", "downstream")
        self.configs = config_files(raw.get("configs") or [], mapping, where)
        self.args = {k: str(v) for k, v in _fill(dict(raw.get("args") or {}), mapping, where).items()}  # fmt: skip
        self.space = raw.get("params") or {}
        if not self.space:
            raise InputError(where, "field 'params': empty search space")
        objective = raw.get("objective") or {}
        self.metric = objective.get("metric", "val/auroc")
        if not self.metric.startswith("val/"):
            raise InputError(where, "field 'objective.metric': a validation metric (val/...)")
        self.direction = objective.get("direction", "maximize")
        self.pruner = optuna.pruners.MedianPruner(**(raw.get("pruner") or {}))
        self.storage = (
            shared_storage(storage) if storage else f"sqlite:///{(self.dir / 'study.db').resolve()}"
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir / ".create.lock"):  # workers starting together create it once
            self.study = self.open_study(raw.get("sampler_seed"))

    def open_study(self, seed: int | None) -> optuna.Study:
        """The study in its storage; a storage that cannot be opened (its database driver
        missing, a bad URL) in one line, credentials hidden."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return optuna.create_study(
                study_name=self.name, storage=open_storage(self.storage), load_if_exists=True,
                direction=self.direction, pruner=self.pruner,
                sampler=optuna.samplers.TPESampler(seed=seed),
            )  # fmt: skip
        except (ImportError, SQLAlchemyError) as err:
            raise storage_error(self.storage, err) from None

    def recover_orphans(self) -> None:
        """Fail this host's RUNNING trials whose worker is gone; enqueue their params again."""
        host = socket.gethostname()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker", "")
            name, _, pid = worker.partition(":")
            if name == host and pid.isdigit() and not _alive(int(pid)):
                self.study.tell(t.number, state=TrialState.FAIL)
                self.study.enqueue_trial(t.params)  # not skip_if_exists: the orphan has them

    def objective(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(trial, self.space, str(self.path))
        overlay = nested(params)
        # no storage here: the trial reads it from its environment (a URL may hold a password)
        callback = {"class_path": "clinical_peft.studies.pruning.OptunaPruning", "init_args": {
            "study_name": self.name, "trial_id": trial._trial_id, "monitor": self.metric}}  # fmt: skip
        config = self.dir / "configs" / f"trial{trial.number}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump({**overlay, "trainer": {
            **overlay.get("trainer", {}), "callbacks": [callback]}}, sort_keys=False))  # fmt: skip
        run = Run(f"trial{trial.number}", self.stage, [*self.configs, str(config)], self.args)
        run_dir = self.dir / f"trial{trial.number}"
        log = trial_log(self.dir, trial.number)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as handle:
            env = {**os.environ, STORAGE_ENV: self.storage}
            code = run_to_end(command(run, run_dir, 0), handle, env)
        done = self.study.get_trials(deepcopy=False)[trial.number]
        if "pruned_at_epoch" in done.user_attrs:
            raise optuna.TrialPruned()
        metrics = RunDir(run_dir).metrics
        if code != 0 or not metrics.is_file():
            error = last_error(log)
            trial.set_user_attr("error", error)  # the sweep's one line when no trial finishes
            raise RuntimeError(f"trial {trial.number} failed (exit {code}): {error}; see {log}")
        import json

        value = json.loads(metrics.read_text()).get(self.metric)
        if value is None:
            raise RuntimeError(f"trial {trial.number}: no {self.metric} in {metrics}")
        return float(value)

    def finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=FINISHED))

    def optimize(self, n_trials: int) -> None:
        with locked(self.dir / ".create.lock"):  # one worker at a time re-enqueues orphans
            self.recover_orphans()
        remaining = n_trials - self.finished()
        if remaining > 0:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.study.optimize(
                self.objective, n_trials=remaining, catch=(RuntimeError,),
                callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)],
            )  # fmt: skip

    def write_best(self) -> Path | None:
        """best.yaml: the best trial's parameters as a config overlay."""
        if not self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return None
        best = self.study.best_trial
        path = self.dir / "best.yaml"
        header = (f"# {self.name}: trial {best.number}, {self.metric} {best.value:.4f}\n"
                  f"# make {self.stage} ARGS=\"-c {path}\"\n")  # fmt: skip
        path.write_text(header + yaml.safe_dump(nested(best.params), sort_keys=False))
        return path

    def write_report(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization.matplotlib import (
            plot_optimization_history,
            plot_param_importances,
        )

        trials = self.study.get_trials(deepcopy=False)
        keys = list(self.space)
        lines = [f"# Sweep {self.name}", "", f"Objective: {self.direction} `{self.metric}`; "
                 f"storage `{redacted(self.storage)}`.", "",
                 "| trial | state | value | " + " | ".join(keys) + " |",
                 "|" + "---|" * (3 + len(keys))]  # fmt: skip
        for t in trials:
            value = "-" if t.value is None else f"{t.value:.4f}"
            cells = [str(t.params.get(k, "-")) for k in keys]
            lines.append(f"| {t.number} | {t.state.name} | {value} | " + " | ".join(cells) + " |")
        (self.dir / "report.md").write_text("\n".join(lines) + "\n")
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        for name, plot, needed in (("history", plot_optimization_history, 1),
                                   ("importance", plot_param_importances, 2)):  # fmt: skip
            if len(complete) < needed:
                continue
            try:
                ax = plot(self.study)
            except (ValueError, RuntimeError):  # e.g. importance with one distinct value
                continue
            ax.figure.tight_layout()
            ax.figure.savefig(self.dir / f"{name}.png", dpi=110)
            plt.close(ax.figure)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> None:
    """Optuna search over a sweep spec's space; resumable, shareable by many workers."""
    parser = spec_parser(
        "sweep", "Optuna TPE search (experiments/sweeps/<SWEEP>.yaml); writes best.yaml."
    )
    parser.add_argument("--task", default=None, help="fills {task} in the spec (e.g. mor)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials in all (20)")
    parser.add_argument("--out", default="runs/sweeps", help="sweeps root (runs/sweeps)")
    parser.add_argument("--storage", default=None,
                        help="shared storage: RDB URL or journal *.log path "
                        "(default: SQLite in the sweep directory)")  # fmt: skip
    parser.add_argument("--report_only", action="store_true", help="run no trial")
    args = parser.parse_args(argv)
    at_least_one(args.trials, "--trials")
    path, variables = spec_arguments("sweep", args)
    search = Sweep(path, args.task, args.out, args.storage, variables)
    if not args.report_only:
        check_trial_inputs(search.configs, search.args)
        exit_on_sigterm()
        search.optimize(args.trials)
    best = search.write_best()
    search.write_report()
    if not args.report_only:
        refuse_if_none_finished(search.study, search.dir)  # exit 2, not 0 with "best: None"
    print(f"sweep {search.name}: {search.finished()} finished trials; best: {best}")


def __getattr__(name: str):
    # trial configs written before the callback moved (configs/trial<k>.yaml) name it here
    if name == "OptunaPruning":
        from clinical_peft.studies.pruning import OptunaPruning

        return OptunaPruning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
