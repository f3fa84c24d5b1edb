"""Other ISA products (GAIA, GISA-10m, WSF 2019, ESRI 10 m Land Cover, Dynamic World,
GHS-BUILT-S) read from their published formats onto the assessment grid, and compared
with the JointSeg map on the same pixels (Table 1 of the paper).

* :mod:`.formats`: one :class:`~.formats.ProductFormat` per product kind: CRS,
  resolution, value encoding and nodata as published (with sources), and the rule that
  turns its values into an ISA fraction for a year;
* :mod:`.load`: :func:`~.load.load_fraction` reads a product (file, VRT, URL or several
  tiles) onto a grid as an ISA fraction;
* :mod:`.assess`: :func:`~.assess.assess_products` compares every product, the map
  and the baseline against one reference on the pixels valid in all of them.
"""
