"""The Python side of the Optuna interoperability test, run with Debian's python3-optuna 3.1.

  optuna_interop.py read STORAGE STUDY   prints the study as Optuna loads it (JSON): every trial's number, state,
                                         value, parameters with their distributions, intermediate values, user attributes
  optuna_interop.py add STORAGE STUDY    adds a trial through ask/tell (the demo task's parameters, value 0.999) and
                                         enqueues one with fixed parameters; prints their numbers (JSON)
"""
import json
import sys

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.WARNING)


def describe(distribution):
    if isinstance(distribution, FloatDistribution):
        return {"type": "float", "low": distribution.low, "high": distribution.high, "log": distribution.log}
    if isinstance(distribution, IntDistribution):
        return {"type": "int", "low": distribution.low, "high": distribution.high, "log": distribution.log, "step": distribution.step}
    if isinstance(distribution, CategoricalDistribution):
        return {"type": "categorical", "choices": list(distribution.choices)}
    return {"type": type(distribution).__name__}


def value(v):
    # JSON has no infinities: write them as text.
    return v if v is None or (v == v and abs(v) != float("inf")) else repr(v)


def main():
    mode, storage, name = sys.argv[1:4]
    study = optuna.load_study(storage=storage, study_name=name)
    if mode == "read":
        trials = []
        for t in study.get_trials(deepcopy=False):
            trials.append({
                "number": t.number,
                "state": t.state.name,
                "value": value(t.value) if t.values is not None else None,
                "params": t.params,
                "distributions": {k: describe(d) for k, d in t.distributions.items()},
                "intermediate": {str(k): value(v) for k, v in sorted(t.intermediate_values.items())},
                "user_attrs": t.user_attrs,
            })
        print(json.dumps({"direction": study.direction.name, "user_attrs": study.user_attrs, "trials": trials}))
    elif mode == "add":
        trial = study.ask()
        trial.suggest_float("x", -5, 5)
        trial.suggest_float("rate", 1e-3, 1, log=True)
        if trial.suggest_categorical("kind", ["a", "b", "c"]) == "c":
            trial.suggest_int("depth", 1, 4)
        trial.report(0.5, 1)
        study.tell(trial, 0.999)
        study.enqueue_trial({"x": 0.25, "rate": 0.5, "kind": "b"})
        waiting = [t.number for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.WAITING]
        print(json.dumps({"told": trial.number, "enqueued": waiting}))
    else:
        raise SystemExit("usage: optuna_interop.py read|add STORAGE STUDY")


if __name__ == "__main__":
    main()
