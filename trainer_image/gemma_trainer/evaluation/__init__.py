"""The evaluation stage (``spec.evaluation``): after training, the base model and the adapter answer the held-out
rows greedily, each check scores the fraction of rows that pass, and the gate decides the exit code
(``EXIT_BELOW_THRESHOLD`` when it fails). ``checks`` holds the pure scorers (one record per check type),
``prompts`` the rows' prompts and references, ``answers`` the resumable chunked answers, ``generate`` the
greedy batched generation, ``results`` and ``report`` what is committed, ``stage`` the whole stage."""
