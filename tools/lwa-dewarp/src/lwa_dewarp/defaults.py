"""Defaults of lwa-dewarp that are not (yet) in `lwa_common.config.Dewarp`, held once here."""

MAX_SIZE_BEAMS = 1.5  # compact: fitted FWHM major axis <= this many BMAJ
MAX_GRID_PX = 512  # screen grid side; bigger images get an integer coarsening factor
CLIP_SIGMA = 4.0  # anchors further than this many robust sigmas (leave-one-out) are outliers
CLIP_FLOOR_BEAMS = 0.25  # ... but never when they agree within a quarter beam
POSITION_FLOOR_BEAMS = 0.02  # added in quadrature to the fitted position errors (CLEAN, sidelobes)
INTERP_ORDER = 3  # apply: cubic spline (1 = bilinear)

STATUS_OK = "ok"
STATUS_TOO_FEW = "too_few_anchors"
