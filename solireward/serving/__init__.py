"""`solireward serve`: a batched HTTP reward server for RL trainers (see docs/SERVING.md).

:mod:`.config` (options), :mod:`.ensemble` (several named models, one reward), :mod:`.protocols`
(request bodies of the three protocols), :mod:`.paths` (paths in requests and in free text),
:mod:`.body` (request bodies parsed without materialising every frame), :mod:`.frames` (in-memory
videos: header sizes, limits, the frames to decode), :mod:`.batcher` (decoding pool, dynamic batching
queue, one replica per device), :mod:`.state` (the server's models and shared rules), :mod:`.guard`
(API key, body limit), :mod:`.devices`, :mod:`.metrics` (Prometheus text) and :mod:`.app` (the FastAPI
endpoints). Only :mod:`.app`, :mod:`.guard`, :mod:`.body` and :mod:`.protocols` need the ``serve`` extra.
"""
