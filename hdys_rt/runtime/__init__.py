"""The live runtime: preallocated frame ring (:mod:`.ring`), per-stream estimator loop
(:mod:`.pipeline`), stage timing (:mod:`.stats`) and the server (:mod:`.server`)."""
