"""Live streams: one abstract source base (:mod:`.base`) and its transports (LSL, ZeroMQ, file
replay), plus the sinks that publish estimates (ZeroMQ publisher, LSL outlet)."""
