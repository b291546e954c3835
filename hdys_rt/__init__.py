"""hdys-rt: real-time human dynamics estimation with HDyS (Homogeneous Dynamics Space)."""

__version__ = "0.1.0"
