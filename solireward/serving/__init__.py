"""`solireward serve`: a batched HTTP reward server for RL trainers (see docs/SERVING.md).

:mod:`.config` (options), :mod:`.ensemble` (several named models, one reward), :mod:`.protocols`
(request and response bodies of the three protocols), :mod:`.batcher` (decoding pool, dynamic
batching queue, one replica per device), :mod:`.metrics` (Prometheus text) and :mod:`.app` (the
FastAPI application). Only :mod:`.app` and :mod:`.protocols` need the ``serve`` extra.
"""
