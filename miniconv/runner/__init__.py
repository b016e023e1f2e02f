"""The runner of ``miniconv train NAME``: one generic command for every recipe of ``miniconv/recipes``.

    command.py      options, the run (data, model or checkpoint, warm-up, fit, report), Ctrl-C
    checkpoint.py   one file per epoch, committed by one rename; leftovers removed; read back for --resume
    report.py       report.json, history.png, the printed summary, the untimed warm-up step
"""
