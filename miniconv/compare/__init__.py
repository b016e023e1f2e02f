"""``miniconv compare RECIPE --seeds N --out DIR``: is training on miniconv equivalent to training on Keras?

A seed study: the recipe of ``miniconv train RECIPE`` trained with seeds 0..N-1 on each engine, every
(engine, seed) run a task on Dask distributed, each run in a fresh process; then the statistics.

    command.py   the CLI: options, every check before any run starts, exit codes
    run.py       one run, ``python -m miniconv.compare.run``: one JSON line on stdout
    keras_side.py  the Keras engine of a run: the recipe's model, optimizer, loss and data in Keras 3
    results.py   DIR/results.jsonl: appended, flushed and fsynced run by run; read back deduplicated
    study.py     the Dask tasks (LocalCluster or --scheduler), retries, the progress line
    stats.py     mean, standard deviation, t intervals, Welch's difference and the TOST verdict (SciPy)
    report.py    report.json, report.md and study.png from the results file

Engines: ``miniconv`` runs ``miniconv train RECIPE`` itself (the runner, in a temporary --out);
``keras`` runs the same recipe's data, model, optimizer, loss, batch size and epochs through Keras 3
(``keras_side``: the model is the recipe's own, converted by ``to_keras`` and re-initialised by Keras).
"""

from __future__ import annotations

ENGINES = ("miniconv", "keras")
#: the equivalence margin in accuracy points (percent) when --margin is not given
MARGINS = {"mnist": 0.1, "cats-dogs": 2.0}
DEFAULT_MARGIN = 1.0
RESULTS_FILE = "results.jsonl"
