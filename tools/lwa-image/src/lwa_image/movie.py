"""Movies of the pilot snapshots: raw I, median-subtracted I and raw V, one MP4 each (ffmpeg).

Frames are chosen by header (IMGCAT = snapshot, STOKES, time order by MJD-MID); more than
`max_frames` snapshots are subsampled evenly. Each frame is block-averaged down to at most
`max_size_px` pixels a side (a 4096^2 frame would make a huge, unwatchable video and 150 of them
do not fit in memory), stretched to 8 bits with PIL and piped to ffmpeg (ffmpeg-python) as raw
grey frames, encoded H.264 at `fps` frames per second.

Stretches: raw I from the 1st to the 99.5th percentile of all frames together (no flicker);
median-subtracted I (each frame minus the per-pixel median of all frames) from -3 to +5 sigma;
raw V from -5 to +5 sigma; sigma is each frame's robust RMS (astropy `mad_std`).
"""

from __future__ import annotations

import logging
import math
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.stats import mad_std
from astropy.time import Time

from lwa_common.config import SnapshotQA
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_plane, read_image
from lwa_common.images import find_images, image_info
from lwa_common.io import atomic_path, make_dirs

__all__ = ["MOVIE_KINDS", "find_snapshots", "choose_frames", "make_movies"]

log = logging.getLogger(__name__)

MOVIE_KINDS = ("I-raw", "I-medsub", "V-raw")


@dataclass(frozen=True)
class _Snapshot:
    path: Path
    stokes: str
    mjd: float
    label: str
    subband: str


def find_snapshots(inputs: Sequence[str | Path]) -> dict[str, list[_Snapshot]]:
    """Snapshot images among `inputs` (files, or folders searched for *.fits) by Stokes, in time order."""
    out: dict[str, list[_Snapshot]] = {}
    for f in find_images(inputs):  # the one discovery rule and header reading (lwa_common.images)
        info = image_info(f)
        if info.category != "snapshot":
            continue
        if info.mjd_mid is None:
            raise LwaError(f"{f}: snapshot without MJD-MID or DATE-OBS")
        label = f"{info.subband} {info.stokes} {info.header.get('INTERVAL', '')} " \
                f"{Time(info.mjd_mid, format='mjd').isot[:19]}"
        out.setdefault(info.stokes, []).append(_Snapshot(f, info.stokes, info.mjd_mid, label, info.subband))
    for shots in out.values():
        shots.sort(key=lambda s: s.mjd)
    return out


def choose_frames(n: int, max_frames: int) -> np.ndarray:
    """Indices of at most `max_frames` of `n` frames, evenly spread, first and last included."""
    if max_frames < 1:
        raise LwaError(f"--max-frames must be >= 1, got {max_frames}")
    if n <= max_frames:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_frames)).astype(int))


def _downsample(plane: np.ndarray, max_size: int) -> np.ndarray:
    k = max(1, math.ceil(max(plane.shape) / max_size))
    if k == 1:
        return plane.astype(np.float32)
    ny, nx = (plane.shape[0] // k) * k, (plane.shape[1] // k) * k
    blocks = plane[:ny, :nx].reshape(ny // k, k, nx // k, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(1, 3)).astype(np.float32)


def _robust_sigma(frame: np.ndarray) -> float:
    good = frame[np.isfinite(frame)]
    if good.size == 0:
        return 1.0
    return float(mad_std(good)) or float(np.std(good)) or 1.0


def _to_u8(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.clip((frame - lo) * scale, 0, 255)
    return np.where(np.isfinite(out), out, 0).astype(np.uint8)


def _render(frames: list[np.ndarray], labels: list[str]) -> list[bytes]:
    """8-bit frames (image row 0 at the bottom, as in FITS) with a label, even-sized, as raw bytes."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    out = []
    for frame, label in zip(frames, labels):
        img = Image.fromarray(np.ascontiguousarray(np.flipud(frame)), mode="L")
        w, h = img.size
        if w % 2 or h % 2:
            padded = Image.new("L", (w + w % 2, h + h % 2), 0)
            padded.paste(img, (0, 0))
            img = padded
        ImageDraw.Draw(img).text((4, 2), label, fill=255, font=font)
        out.append(img.tobytes())
    return out


def _encode(frames: list[bytes], size: tuple[int, int], output: Path, fps: float) -> str:
    import ffmpeg

    w, h = size
    with atomic_path(output) as tmp:
        stream = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="gray", s=f"{w}x{h}", framerate=fps)
            .output(str(tmp), vcodec="libx264", pix_fmt="yuv420p", r=fps, crf=20, movflags="+faststart")
            .global_args("-hide_banner", "-loglevel", "error")
            .overwrite_output()
        )
        cmd = shlex.join(stream.compile())
        log.info("running: %s", cmd)
        proc = stream.run_async(pipe_stdin=True, pipe_stderr=True)  # -loglevel error: stderr stays small
        try:
            for frame in frames:
                proc.stdin.write(frame)
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()
        err = proc.stderr.read()
        proc.wait()
        if proc.returncode != 0:
            last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise LwaError(f"ffmpeg failed writing {output} (exit {proc.returncode}): {last}")
    return cmd


def make_movies(inputs: Sequence[str | Path], outdir: str | Path, *, fps: float = SnapshotQA.movie_fps,
                max_frames: int = SnapshotQA.movie_max_frames, max_size_px: int = SnapshotQA.movie_max_size_px,
                overwrite: bool = False) -> list[Path]:
    """Raw I, median-subtracted I and raw V movies of the snapshots in `inputs`; returns the MP4s."""
    if fps <= 0 or max_size_px < 16:
        raise LwaError(f"bad movie settings: fps {fps}, max size {max_size_px} px")
    shots = find_snapshots(inputs)
    if not shots:
        raise LwaError("no snapshot images (IMGCAT = snapshot) among the inputs")
    outdir = Path(outdir)
    subband = next(iter(shots.values()))[0].subband or "snapshots"
    wanted = [k for k in MOVIE_KINDS if k.split("-")[0] in shots]
    for stokes in ("I", "V"):
        if stokes not in shots:
            log.warning("no Stokes %s snapshots: its movie(s) are skipped", stokes)
    outputs = {k: outdir / f"{subband}-snapshots-{k}.mp4" for k in wanted}
    existing = [p for p in outputs.values() if p.exists()]
    if existing and not overwrite:
        raise LwaError(f"output exists: {existing[0]} (use --overwrite to replace it)")
    make_dirs(outdir)
    written = []
    for stokes in ("I", "V"):
        if stokes not in shots:
            continue
        series = shots[stokes]
        idx = choose_frames(len(series), max_frames)
        chosen = [series[i] for i in idx]
        log.info("Stokes %s: %d snapshots, %d frames at %g fps", stokes, len(series), len(chosen), fps)
        stack = np.stack([_downsample(image_plane(read_image(s.path, require_finite=False)[0]), max_size_px)
                          for s in chosen])  # a blank (all-NaN) frame stays a frame
        labels = [s.label for s in chosen]
        for kind in (k for k in wanted if k.startswith(stokes)):
            frames = _stretch(kind, stack)
            raw = _render(frames, labels)
            h, w = stack.shape[1] + stack.shape[1] % 2, stack.shape[2] + stack.shape[2] % 2
            _encode(raw, (w, h), outputs[kind], fps)
            log.info("wrote %s (%d frames)", outputs[kind], len(raw))
            written.append(outputs[kind])
    return written


def _stretch(kind: str, stack: np.ndarray) -> list[np.ndarray]:
    if kind == "I-raw":
        finite = stack[np.isfinite(stack)]
        lo, hi = (np.percentile(finite, [1.0, 99.5]) if finite.size else (0.0, 1.0))
        return [_to_u8(f, float(lo), float(hi)) for f in stack]
    if kind == "I-medsub":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(stack, axis=0)
        out = []
        for f in stack:
            d = f - median
            s = _robust_sigma(d)
            out.append(_to_u8(d, -3 * s, 5 * s))
        return out
    if kind == "V-raw":
        out = []
        for f in stack:
            s = _robust_sigma(f)
            out.append(_to_u8(f, -5 * s, 5 * s))
        return out
    raise LwaError(f"unknown movie kind {kind}")
