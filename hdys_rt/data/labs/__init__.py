"""The generic real-lab pipeline behind the ``real_labs`` domain.

* :mod:`.catalog`: which trials each folder of ``real/`` holds (model, markers, IK, plates,
  person, task).
* :mod:`.plates`: force-plate tables -> per-foot loads (plate-to-foot assignment by proximity,
  low-pass filtering of force and moment).
* :mod:`.chain`: the OpenSim chain (scale, IK, ID) and what comes out of it (Rajagopal channels,
  quality figures as AddBiomechanics reports them).
"""
