"""The accuracy report of one ISA map: agreement, reference sample, estimates, plots.

:func:`jointseg.assess.report.build.accuracy_report` assembles, for one region and
year, from the library pieces:

* **agreement with ESA WorldCover** built-up on its native 10 m grid
  (:mod:`jointseg.assess.compare`: the 1 m map aggregated to an ISA fraction, averaged
  onto the WorldCover pixels, binarised at ``threshold``), for the map and the bilinear
  baseline's map when given;
* **agreement with a binary truth** when given (e.g. the simulator's 1 m truth):
  on the map's 1 m grid, and on the WorldCover grid for ISA-1, the baseline and
  WorldCover itself (the truth aggregated the same way as the maps), so products
  of different resolution are compared against one reference;
* per **city** and per **zone** (polygon layers, :mod:`jointseg.assess.groups`): ISA
  areas and the same agreements;
* a **stratified random sample** (:mod:`jointseg.assess.sampling`), labelled from the
  truth raster when given or from a labelled file (:mod:`jointseg.assess.labels`),
  else written for labelling, and the **Olofsson / Stehman estimates** with 95 % CIs
  and the error-adjusted ISA area;
* the plots ``confusion.png``, ``cities.png`` and ``agreement.png``.

Modules: :mod:`~.build` (the orchestration and the files written),
:mod:`~.inputs` (provenance of every input), :mod:`~.comparisons` (the layers on one
grid, the agreement rows, per-group agreement, threshold sweep), :mod:`~.sample`
(sample and estimates), :mod:`~.plots` (matplotlib figures) and :mod:`~.markdown`
(``report.md``).

Outputs in ``out_dir``: ``report.md``, ``report.json``, ``confusion.csv``,
``samples.gpkg`` and the PNGs, all written atomically. ``report.json`` records the
provenance of every input (path, sha256, identifying tags, ``simulated``) and, per
figure, which inputs it came from. When any input is tagged ``JOINTSEG_SIMULATED``
the report says so at the top: such figures are not real-world accuracy.
"""
