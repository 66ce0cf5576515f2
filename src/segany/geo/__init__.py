"""Maps: SAM on web-map tiles and georeferenced rasters.

    projection   lat/lng <-> EPSG:3857 metres <-> world pixels at a zoom (pyproj)
    tiles        XYZ tile sources (xyzservices names or URL templates), concurrent fetch with an
                 on-disk cache and a per-request tile limit
    raster       tiles stitched and cropped to a lat/lng extent, with its affine transform
    vector       masks -> polygons (holes kept, no background) -> GeoJSON in EPSG:4326
    samgis       the SamGIS-compatible request / response and its inference
    geotiff      a GeoTIFF read window by window: bands, rescaling to uint8, nodata, prompt CRSs
    segment      `segany geo segment`: prompts on a raster -> polygons
    tiled_amg    `segany geo amg`: automatic masks window by window, memory bounded
    seams        windows over a raster, and polygons that cross their seams joined
    parts        per-window results on disk, so a killed `geo amg` resumes
    feature_files  writing features to GeoJSON / GeoPackage / Shapefile (pyogrio)

Needs the ``geo`` extra (rasterio, shapely, pyproj, xyzservices, pyogrio):
pip install 'segany[geo]'.
"""

try:
    import affine  # noqa: F401  (comes with rasterio)
    import pyproj  # noqa: F401
    import rasterio  # noqa: F401
    import shapely  # noqa: F401
except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
        f"segany.geo needs {error.name}: pip install 'segany[geo]'", name=error.name
    ) from error
