"""The Gemma fine-tuning trainer that runs inside the operator's Jobs (no Kubernetes imports here).

Its modules are layered (the ``trainer-layers`` contract in ``.importlinter``; no import cycle, imports inside
functions included: tests/test_import_cycles.py), each layer importing only those below it:

* ``cli``: ``gemmaft train`` / ``check-numerics``: reads the config, picks the device setup, launches workers;
* stages: ``distill`` (the stage runner, the teacher and the student), ``numerics``, ``compare``, ``tiny``;
* ``train``: the fine-tune stage (HF Trainer, committed checkpoints, resume, preemption, result upload);
* ``callbacks``, ``guard``, ``xla_trainer``: what the Trainer runs with;
* backends: ``backends`` (which device: cuda, xla or cpu), ``xla``, ``xla_hosts``, ``multihost``,
  ``distributed`` (the barrier);
* model: ``model`` (locating, loading, the method, the result), ``packaged``, ``precision``, ``loss_head``,
  ``packed_attention``, ``memprobe``;
* data: ``rows``, ``templates``, ``data``, ``batches``, ``dataset``;
* storage: ``object_store`` (the interface), ``storage`` (local folders, ``open_store``), ``gcs_store``,
  ``checkpoints``, ``model_cache``, ``progress``, ``plot``;
* ``config`` (the run config), ``device`` (``DeviceSetup``), ``process`` (``Rank``, scratch), ``errors``, ``logs``.

Torch, transformers, peft, torch_xla and bitsandbytes are imported inside functions where a light module needs
them (so ``gemmaft train`` starts without them); nothing else is.
"""
