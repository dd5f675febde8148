"""`lwa-transient`: blind Stokes V and Stokes I difference-image transient search (thin CLI)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from lwa_common.cli import ExistingPath, NewPath, common_options, emit, json_option, renamed, run_main
from lwa_common.config import default_text, section_with
from lwa_common.images import image_hint_options
from lwa_transient.masks import ATEAM_J2000
from lwa_transient.search import search_images
from lwa_transient.settings import SearchOptions

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

_PAIR = click.Tuple([float, float])


def _default(text: str, *keys: str, section: str = "transient") -> str:
    """Help text ending with the default of each config key, rendered as every tool renders it."""
    return f"{text} [{'; '.join(default_text(section, key) for key in keys)}]"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Blind transient search on OVRO-LWA images (Stokes V deep and 10 min − deep, Stokes I 10 min − deep)."""


@cli.command("search")
@click.argument("inputs", nargs=-1, required=True, type=ExistingPath)
@click.option("-o", "--output", type=NewPath, required=True,
              help="Output folder: candidates.csv and J-name folders with cutouts and PNGs.")
@click.option("--catalog", type=ExistingPath, default=None,
              help="Reference catalogue to cross-match (CSV with ra/dec, VLSSr text, makesourcedb, TTCal JSON, LSL's "
                   "3C/4C, an astropy table).")
@click.option("--stokes", type=click.Choice(["both", "V", "I"]), default="both", show_default=True,
              help="Which searches to run.")
@click.option("--v-detection-sigma", "v_sigma", **renamed("--v-sigma"), type=float, default=None, help=_default("V detection threshold (σ, both signs).", "v_sigma"))
@click.option("--i-detection-sigma", "i_sigma", **renamed("--i-sigma"), type=float, default=None,
              help=_default("I difference detection threshold (σ, positive).", "i_sigma"))
@click.option("--rms-box-px", type=int, default=None, help=_default("Local RMS block size (px).", "rms_box_px"))
@click.option("--rms-smooth-boxes", type=int, default=None,
              help=_default("Median over this many × this many neighbouring blocks (1 = none).", "rms_smooth_boxes"))
@click.option("--v-mask-sigma", type=_PAIR, default=None,
              help=_default("Deep-I σ above which V is masked to 2 beams, then to 1 beam.",
                            "v_mask_high_sigma", "v_mask_low_sigma"))
@click.option("--i-mask-sigma", type=_PAIR, default=None,
              help=_default("Deep-I σ above which I is masked to 2 beams, then to 1 beam.",
                            "i_mask_high_sigma", "i_mask_low_sigma"))
@click.option("--mask-beams", type=_PAIR, default=None,
              help=_default("Mask radius (restoring beams) above the first, then the second mask σ.", "mask_beams"))
@click.option("--steady-ratio", type=float, default=None,
              help=_default("I: a deep-I source this many times brighter in a 10 min image is not masked there "
                            "(0: off).", "steady_ratio"))
@click.option("--v-ateam-radius-deg", type=_PAIR, default=None,
              help=_default("V exclusion radius around Vir A/Tau A, then around Cyg A/Cas A.", "v_ateam_radius_deg"))
@click.option("--i-ateam-radius-deg", type=_PAIR, default=None,
              help=_default("I exclusion radius around Vir A/Tau A, then around Cyg A/Cas A.", "i_ateam_radius_deg"))
@click.option("--ateam-file", type=ExistingPath, default=None,
              help="TTCal sources.json replacing the built-in A-team positions.")
@click.option("--ateam-major-jy", type=float, default=None,
              help=_default("With --ateam-file: sources at least this bright get the larger radius.", "ateam_major_jy"))
@click.option("--ateam/--no-ateam", "use_ateam", default=True, show_default=True, help="Mask the A-team zones.")
@click.option("--bilobe/--no-bilobe", default=True, show_default=True, help="Run the bi-lobe partner test.")
@click.option("--bilobe-radius-beams", type=float, default=None,
              help=_default("Partner search radius (restoring beams, BMAJ).", "bilobe_radius_beams"))
@click.option("--bilobe-ratio", type=_PAIR, default=None,
              help=_default("Allowed |candidate|/|partner| flux ratio (min max).", "bilobe_ratio"))
@click.option("--bilobe-sigma", type=_PAIR, default=None,
              help=_default("S/N of the partner, then of the candidate, for the test.", "bilobe_sigma"))
@click.option("--drop-bilobe", is_flag=True, help="Leave bi-lobe artefacts out of candidates.csv.")
@click.option("--match-radius-beams", "match_beams", **renamed("--match-beams"), type=float, default=None,
              help=_default("Catalogue match radius (restoring beams, BMAJ).", "catalog_match_beams"))
@click.option("--v-difference/--no-v-difference", default=None,
              help=_default("Search each 10 min V image minus the deep V image.", "v_difference"))
@click.option("--v-sidelobe-fraction", type=_PAIR, default=None,
              help=_default("Sidelobe rule: cap on the fraction of a brighter V source of the same image, and the "
                            "fraction of a deep-V source in 10 min − deep V.", "v_sidelobe_fraction"))
@click.option("--v-sidelobe-margin", type=float, default=None,
              help=_default("Sidelobe rule: this many times the sidelobe envelope measured around a V source.",
                            "v_sidelobe_margin"))
@click.option("--v-sidelobe-mirror/--no-v-sidelobe-mirror", default=None,
              help=_default("Sidelobe rule: a candidate is a sidelobe when its twin through the brighter source "
                            "(a dirty beam is point-symmetric; moved by the dewarp screen in a dewarped image) holds "
                            "1/margin of it, same sign; off: the measured envelope alone.", "v_sidelobe_mirror"))
@click.option("--v-source-sigma", type=float, default=None,
              help=_default("|S/N| in deep V of the V sources whose sidelobes are tested.", "v_source_sigma"))
@click.option("--trend-fraction", type=float, default=None,
              help=_default("Trend rule (10 min − deep, V and I): a candidate that the other intervals' differences "
                            "predict to this fraction of its value is an artefact (0: off).", "trend_fraction"))
@click.option("--max-cutouts", type=int, default=None,
              help=_default("Cutouts + PNGs per subband per Stokes (the brightest).", "max_cutouts"))
@click.option("--warn-candidates", type=int, default=None,
              help=_default("Warn when a subband/Stokes has more candidates.", "warn_candidates"))
@click.option("--cutout-size-deg", type=float, default=None, help=_default("Cutout side (deg).", "size_deg", section="cutout"))
@click.option("--robust", type=float, default=None, help=_default("ROBUST of the images to search.", "robust"))
@click.option("--plots/--no-plots", "products", **renamed("--products/--no-products"), default=True, show_default=True,
              help="Write the candidates' cutouts (FITS) and their PNGs.")
@click.option("--overwrite", is_flag=True, help="Replace an existing candidates.csv (and its products).")
@json_option
@image_hint_options
@common_options
def search_cmd(inputs: tuple[Path, ...], output: Path, catalog: Path | None, stokes: str, v_sigma, i_sigma,
               rms_box_px, rms_smooth_boxes, v_mask_sigma, i_mask_sigma, mask_beams, steady_ratio, v_ateam_radius_deg,
               i_ateam_radius_deg, ateam_file, ateam_major_jy, use_ateam, bilobe, bilobe_radius_beams, bilobe_ratio, bilobe_sigma,
               drop_bilobe, match_beams, v_difference, v_sidelobe_fraction, v_sidelobe_margin, v_sidelobe_mirror, v_source_sigma, trend_fraction, max_cutouts, warn_candidates, cutout_size_deg, robust, products,
               overwrite, as_json, hints, cfg) -> None:
    """Search INPUTS (FITS images and/or folders of them) for transients.

    Images are chosen by header: Stokes I/V (STOKES keyword or axis), IMGCAT deep/10min (or
    lwa-stack's wideband stacks, IMGCAT stack, deep or 10 min by INTERVAL; a plain WSClean image
    is deep unless --kind/--interval say otherwise), not PB-corrected, and TAPER > 0 and ROBUST =
    --robust when the header says; grouped by SUBBAND (a stack's band name, else the subband of
    the frequency); dewarped images are preferred. The deep V image and each 10 min
    V image minus the deep V image are searched for positive and negative peaks; for I, each 10 min
    image minus the deep image is searched for positive peaks. Bright deep-I sources and A-team
    zones are masked; every radius is in restoring beams (BMAJ) of the image. A candidate with an
    opposite-sign partner (bi-lobe test), or no brighter than a sidelobe of a brighter V source,
    gets class `artefact`; one matching the
    catalogue gets class `known`; the rest are `candidate`. Writes OUTPUT/candidates.csv (always,
    header only when nothing is found) and, for the brightest candidates, OUTPUT/J0553+31/
    J055312+312045_55MHz_V_t0002.{fits,png}. Prints the paths written.

    \b
    Example:
      lwa-transient search images/55MHz/ -o transients/55MHz \\
          --catalog vlssr.csv -v
      lwa-transient search *-V-Taper-*.fits *-I-*Robust-0*.fits -o out \\
          --v-detection-sigma 6 --bilobe-ratio 0.25 4 --json
      lwa-transient search wsclean-V-image.fits wsclean-I-image.fits -o out   # plain WSClean images
    """
    v_high, v_low = v_mask_sigma or (None, None)  # one option, two config keys
    i_high, i_low = i_mask_sigma or (None, None)
    settings = section_with(
        cfg.transient, v_sigma=v_sigma, i_sigma=i_sigma, rms_box_px=rms_box_px, rms_smooth_boxes=rms_smooth_boxes,
        v_mask_high_sigma=v_high, v_mask_low_sigma=v_low, i_mask_high_sigma=i_high, i_mask_low_sigma=i_low,
        mask_beams=mask_beams, steady_ratio=steady_ratio, v_ateam_radius_deg=v_ateam_radius_deg,
        i_ateam_radius_deg=i_ateam_radius_deg, ateam_major_jy=ateam_major_jy, bilobe_radius_beams=bilobe_radius_beams,
        bilobe_ratio=bilobe_ratio, bilobe_sigma=bilobe_sigma, catalog_match_beams=match_beams,
        v_difference=v_difference, v_sidelobe_fraction=v_sidelobe_fraction, v_sidelobe_margin=v_sidelobe_margin,
        v_sidelobe_mirror=v_sidelobe_mirror, v_source_sigma=v_source_sigma, trend_fraction=trend_fraction,
        max_cutouts=max_cutouts, warn_candidates=warn_candidates, robust=robust,
    )
    options = SearchOptions(stokes=("V", "I") if stokes == "both" else (stokes,), products=products, bilobe=bilobe,
                            drop_bilobe=drop_bilobe, ateam=ATEAM_J2000 if use_ateam else (),
                            ateam_file=ateam_file if use_ateam else None)
    result = search_images(list(inputs), output=output, settings=settings,
                           cutout=section_with(cfg.cutout, size_deg=cutout_size_deg), options=options,
                           catalog=catalog, overwrite=overwrite,
                           argv=list(sys.argv), hints=hints)
    summary = result.summary()
    emit(summary if as_json else summary["outputs"], as_json=as_json)


def main() -> None:
    run_main(cli)
