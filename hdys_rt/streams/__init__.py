"""Live streams: one abstract source base (:mod:`.base`) over a preallocated frame ring
(:mod:`.ring`) and its transports (LSL, ZeroMQ, file replay), plus the sinks that publish
estimates (:mod:`.sinks`: the protocol; ZeroMQ publisher, LSL outlet)."""
