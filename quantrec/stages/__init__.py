"""One path-in / path-out function per pipeline stage: what a KFP component calls.

Each stage reads its inputs from paths (local or fsspec URLs), writes its outputs to
paths, and returns a small JSON-able summary for the component to put into artifact
metadata. Stages use models, codebooks, evaluation and the registry; nothing below
them imports a stage (``training/`` in particular knows no model).

    validate.py   the GX gate + the validated-data snapshot
    tasks.py      task tables from the snapshot (+ their GX suites)
    champion.py   resolve the registry champion once per run
    codebook.py   fit (or reuse) the GMV codebook
    train.py      train every daily model of one task table
    evaluate.py   offline evaluation of every trained model
    publish.py    record the run's version in the registry
    ddp.py        the distributed (torchrun) training entry point
"""
