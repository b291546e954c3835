"""The live runtime: per-stream estimator loop (:mod:`.pipeline`), stage timing (:mod:`.stats`)
and the server (:mod:`.server`). The frame ring lives with the streams
(:mod:`hdys_rt.streams.ring`)."""
