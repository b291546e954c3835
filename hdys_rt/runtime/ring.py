"""The frame ring now lives with the streams (:mod:`hdys_rt.streams.ring`); this name is kept so
existing imports keep working."""

from hdys_rt.streams.ring import ABSURD_M, FrameRing, warm_up  # noqa: F401
