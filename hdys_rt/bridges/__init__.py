"""Bridges: adapters between the outside world and hdys-rt streams (CLI: ``hdys-rt bridge``,
``hdys-rt view``; thin runnable entry points in the repository's top-level ``bridges/``).

* the one file loader (C3D, TRC, MOT/STO, corpus, XDF, with marker-set mapping and unit
  checks) and the marker sets live with the data: :mod:`hdys_rt.data.loader`,
  :mod:`hdys_rt.data.markersets`.
* :mod:`.keypoints`: pose-estimator keypoints (JSON lines / ZeroMQ) -> a keypoint stream.
* :mod:`.sinks`: LSL outlets with full metadata, the ZeroMQ marker sender.
* :mod:`.subject`: the subject's mass / height from flags or LSL metadata (the scaling to N·m
  itself is :mod:`hdys_rt.subject`).
* :mod:`.xdf`: a minimal XDF writer (tests, small exports).
* :mod:`.estimate`: ``hdys-rt estimate``: a recording in, per-frame estimates out.
* :mod:`.view`: the local web view of live estimates.
* :mod:`.plots`: estimate-vs-reference PNGs for ``hdys-rt eval --plot``.
"""
