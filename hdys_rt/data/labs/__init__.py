"""The generic real-lab pipeline behind the ``real_labs`` domain.

* :mod:`.catalog`: which trials each folder of ``real/`` holds (model, markers, IK, plates,
  person, task).
* :mod:`.plates`: force-plate tables -> per-foot loads (plate-to-foot assignment by proximity,
  low-pass filtering of force and moment).
* :mod:`.chain`: the OpenSim chain (scale, IK, ID) and what comes out of it (Rajagopal channels,
  quality figures as AddBiomechanics reports them).
* :mod:`.c3d_grf`: GRF-only sequences from C3D files without a model; :mod:`.emg`: raw sEMG
  analog channels -> envelopes on the muscle channels.
* :mod:`.b3d`: AddBiomechanics ``.b3d`` files (the ``addbiomechanics`` domain).
"""
