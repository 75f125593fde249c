"""What a grid or a sweep spec may hold: every key, the YAML types it takes. A key the schema
does not know is refused with the nearest valid name (`arsg` -> `args`, `seed` -> `seeds`), a
value of another type by its key (`tasks: mor` is a string, not a list of tasks), before any
run starts: a misread spec would otherwise run its rows with defaults, silently."""

from __future__ import annotations

import difflib

from clinical_peft.util.errors import InputError, quote_value

NULL = type(None)
Field = tuple[tuple[type, ...], str]  # the types a key takes, and how an error names them

NAME: Field = ((str,), "a name")
NAMES: Field = ((list, NULL), "a list of names")
MAPPING: Field = ((dict, NULL), "a mapping")
WHOLE: Field = ((int,), "a whole number")
METRIC: Field = ((str, dict), "a metric name, or a mapping task: metric name")

RUN = {"stage": NAME, "configs": ((list, NULL), "a list of config files"), "args": MAPPING,
       "requires": NAMES}  # fmt: skip
ROW = {
    **RUN,
    "tasks": NAMES,
    "seeds": WHOLE,
    "metric": METRIC,
    "source": ((str, NULL), "a row name"),
}
GRID = {"name": NAME, "seeds": WHOLE, "reference": ((str, NULL), "a row name"), "metric": METRIC,
        "vars": MAPPING, "tasks": NAMES, "prerequisites": MAPPING, "defaults": MAPPING,
        "rows": ((dict,), "a mapping of row name: settings")}  # fmt: skip
SWEEP = {"name": NAME, "stage": NAME, "vars": MAPPING, "configs": RUN["configs"], "args": MAPPING,
         "objective": ((dict, NULL), "a mapping with metric, direction"), "pruner": MAPPING,
         "params": ((dict,), "a mapping of dotted key: distribution"),
         "sampler_seed": ((int, NULL), "a whole number")}  # fmt: skip
OBJECTIVE = {"metric": NAME, "direction": ((str,), "maximize or minimize")}
NUMBER: Field = ((int, float), "a number")
LISTS_OF_TEXT = ("configs", "requires", "tasks")  # names and file paths
PARAM = {"type": ((str,), "float, int or categorical"), "low": NUMBER, "high": NUMBER,
         "log": ((bool,), "true or false"), "choices": ((list,), "a list of values")}  # fmt: skip


def describe(value: object) -> str:
    if isinstance(value, str):
        return f"the text {quote_value(value)}"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "nothing (null)"}[value]
    kinds = {dict: "a mapping", list: "a list", int: "the number", float: "the number"}
    shown = f" {value}" if isinstance(value, int | float) else ""
    return f"{kinds.get(type(value), type(value).__name__)}{shown}"


def check_fields(raw: object, schema: dict[str, Field], where: str, field: str = "") -> dict:
    """`raw` as a mapping whose keys all are in `schema`, each of the type it takes."""
    if not isinstance(raw, dict):
        raise InputError(where, f"field '{field}': expected a mapping, got {describe(raw)}")
    for key, value in raw.items():
        name = f"{field}.{key}" if field else str(key)
        if key not in schema:
            near = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"valid: {', '.join(schema)}"
            raise InputError(where, f"field '{name}': unknown key ({hint})")
        types, what = schema[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InputError(where, f"field '{name}': expected {what}, got {describe(value)}")
        if isinstance(value, list) and key in LISTS_OF_TEXT:
            for item in value:
                if not isinstance(item, str):
                    raise InputError(
                        where, f"field '{name}': expected {what}, got {describe(item)}"
                    )
    return raw


def check_grid(raw: dict, where: str) -> None:
    check_fields(raw, GRID, where)
    for name, run in (raw.get("prerequisites") or {}).items():
        check_fields(run, RUN, where, f"prerequisites.{name}")
    check_fields(raw.get("defaults") or {}, ROW, where, "defaults")
    for name, row in (raw.get("rows") or {}).items():
        check_fields({} if row is None else row, ROW, where, f"rows.{name}")


def check_sweep(raw: dict, where: str) -> None:
    """The sweep's keys and types, then its pruner and distributions as Optuna builds them."""
    import inspect

    import optuna

    check_fields(raw, SWEEP, where)
    objective = check_fields(raw.get("objective") or {}, OBJECTIVE, where, "objective")
    if objective.get("direction", "maximize") not in ("maximize", "minimize"):
        what = describe(objective["direction"])
        raise InputError(where, f"field 'objective.direction': maximize or minimize, not {what}")
    arguments = inspect.signature(optuna.pruners.MedianPruner).parameters
    check_fields(raw.get("pruner") or {}, {k: WHOLE for k in arguments}, where, "pruner")
    try:
        optuna.pruners.MedianPruner(**(raw.get("pruner") or {}))
    except ValueError as err:
        raise InputError(where, f"field 'pruner': {err}") from None
    for key, dist in raw.get("params", {}).items():
        check_distribution(
            check_fields(dist, PARAM, where, f"params.{key}"), f"params.{key}", where
        )


def check_distribution(dist: dict, field: str, where: str) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = dist.get("type", "float")
    needed = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}
    if kind not in needed:
        raise InputError(where, f"field '{field}.type': unknown {quote_value(kind)} "
                                f"(valid: {', '.join(needed)})")  # fmt: skip
    for key in needed[kind]:
        if key not in dist:
            raise InputError(where, f"field '{field}.{key}': required for a {kind} parameter")
    try:
        if kind == "categorical":
            CategoricalDistribution(dist["choices"])
        elif kind == "int":
            for key in ("low", "high"):
                if not isinstance(dist[key], int):
                    raise ValueError(f"'{key}' of an int parameter is a whole number")
            IntDistribution(dist["low"], dist["high"], log=dist.get("log", False))
        else:
            FloatDistribution(dist["low"], dist["high"], log=dist.get("log", False))
    except ValueError as err:
        raise InputError(where, f"field '{field}': {err}") from None
