"""Looking at the products: the layer manifest of a product folder (``layers``), a local
tile server over the COGs with a MapLibre swipe-compare page (``server``, ``static/``),
and a QGIS project writer (``qgis``) that styles the same layers the same way."""
